"""The checks every lesson email must pass: `course check` and the preview's panel share them.

Size against Gmail's clip, links and calls to action, alt text, the unsubscribe headers,
the text part, colour contrast and text size from the inline styles, the heading outline,
DKIM (when configured) and SpamAssassin (when installed).
"""

from course.checks.results import FAILING, LEVELS, Check, Level, worst
from course.checks.suite import (
    Judges,
    alt_check,
    contrast_check,
    cta_check,
    dkim_check,
    heading_check,
    lesson_checks,
    link_check,
    message_checks,
    size_check,
    spam_check,
    text_check,
    text_size_check,
    unsubscribe_check,
)
from course.checks.view import MessageView, view_message

__all__ = [
    "FAILING",
    "LEVELS",
    "Check",
    "Judges",
    "Level",
    "MessageView",
    "alt_check",
    "contrast_check",
    "cta_check",
    "dkim_check",
    "heading_check",
    "lesson_checks",
    "link_check",
    "message_checks",
    "size_check",
    "spam_check",
    "text_check",
    "text_size_check",
    "unsubscribe_check",
    "view_message",
    "worst",
]
