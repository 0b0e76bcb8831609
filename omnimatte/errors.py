"""The one error type every stage raises for bad input, so messages read the same everywhere."""


class StageError(RuntimeError):
    """A problem with a sample's input that the user can fix.

    The message names the stage, the sample, what is wrong and what to do, so the
    Snakemake log tells a user everything without reading a traceback.
    """

    def __init__(self, stage: str, sample: str | None, problem: str, fix: str) -> None:
        """`sample` None: a problem of no one sample (the SAM weights' download)."""
        self.stage = stage
        self.sample = sample
        self.problem = problem
        self.fix = fix
        about = "" if sample is None else f" sample '{sample}':"
        super().__init__(f"[{stage}]{about} {problem}\n  fix: {fix}")
