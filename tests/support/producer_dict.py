# -*- coding: utf-8 -*-
"""What the test producers share: the issue's producer dict, text on Python 2.7 and 3, and a
class whose pickled instances bucketq must refuse. Imported by make_pickles.py (payload tests)
and ../flow_support/produce.py (end-to-end producers); works unchanged on 2.7 and 3.x.
"""

import sys

PY2 = sys.version_info[0] == 2
if PY2:
    text_type = unicode  # noqa: F821 (Python 2 only)
else:
    text_type = str


class Instance(object):
    """A class whose pickled instances bucketq must refuse: unpickling one would run code."""

    def __init__(self):
        self.x = 1


def u(s):
    """A text string on both Pythons (source literals are UTF-8 bytes on 2.7)."""
    return s.decode("utf-8") if PY2 else s


# The producer dict from the issue, exactly, with its Chinese subject and content.
ISSUE = {
    "nickname": "Testing",
    "to_email": "someone@example.com",
    "subject": "测试邮件",
    "content": "仅仅是测试",
}


def issue_text():
    """The issue's dict with text keys and values, as a Python 3 producer has it."""
    return dict((u(k), u(v)) for k, v in ISSUE.items())
