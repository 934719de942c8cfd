"""Errors the core raises on bad input: one base class so the CLI and the app can show them plainly."""


class NGError(Exception):
    """A problem with the user's input or environment, with a message meant for a person."""


class ModelLoadError(NGError):
    """The model named by the user cannot be found or built."""


class SubjectNotFoundError(NGError):
    """A prompt does not contain the subject whose position the method needs."""


class BundleError(NGError):
    """A run folder is missing, corrupt, or was made for another model."""


class DataError(NGError):
    """A dataset folder, record or image is missing or malformed."""


class InputImageError(NGError):
    """An image is unreadable, not an image, or too large."""


class Cancelled(NGError):
    """Long work was cancelled by the user; nothing was changed."""


class PromptError(NGError, ValueError):
    """A prompt is empty, undecodable, too long for the model's context, or asks for too many tokens."""


class ArgumentError(NGError, ValueError):
    """A hyperparameter or argument is out of range (not finite, not positive, unknown)."""
