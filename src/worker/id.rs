//! The worker id written as `bq-owner`: host, process and a random part, so an operator can
//! tell which machine and process held a lock, and two processes never share an id.

use rand::Rng;

/// `host-pid-random`, e.g. `mail-01-4242-9f3a61c2`.
pub fn worker_id(rng: &mut impl Rng) -> String {
    format!(
        "{}-{}-{:08x}",
        hostname(),
        std::process::id(),
        rng.gen::<u32>()
    )
}

/// This machine's host name, or `unknown-host`.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name: String = String::from_utf8_lossy(&buf[..end])
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect();
    if name.is_empty() {
        "unknown-host".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn ids_name_the_host_and_process_and_differ() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = worker_id(&mut rng);
        let b = worker_id(&mut rng);
        assert_ne!(a, b);
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
        assert!(a.is_ascii());
    }
}
