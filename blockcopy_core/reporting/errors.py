"""The one error of a run folder a job may not use as asked."""


class RunFolderError(ValueError):
    """A run folder refused before any compute: not writable, used by another run, being written by another job,
    or resumed with other settings. The message is one line that says why and what to do instead."""
