//! The `bucketq` command (to be built).

fn main() -> anyhow::Result<()> {
    Ok(())
}
