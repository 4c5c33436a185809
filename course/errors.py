"""The one root error class and its user-facing subclasses."""


class CourseError(Exception):
    """Root of every error the operator can act on; the CLI prints it without a traceback."""


class ConfigError(CourseError):
    """schedule.yaml or the environment is invalid; the message names the file and key."""


class ArticleError(CourseError):
    """The article does not have the listicle shape; the message names the file and line."""


class TemplateError(CourseError):
    """A Jinja2 or MJML template failed; the message names the template and line."""


class RenderError(CourseError):
    """A rendered email breaks a hard limit (size, header safety)."""


class SubscribersError(CourseError):
    """The subscribers CSV cannot be read at all (a bad row is reported, not raised)."""


class OutputError(CourseError):
    """A file or folder the operator asked us to write cannot be; the message names it."""


class LedgerError(CourseError):
    """The send ledger cannot be opened, migrated or locked."""


class DeliveryError(CourseError):
    """A backend cannot deliver at all (e.g. the server refused the login)."""
