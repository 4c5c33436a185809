"""One module per group of `course` sub-commands."""
