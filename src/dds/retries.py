"""What a retried cluster job asks for: a job that fails on a cluster most often ran out of
the memory or time it asked for, so attempt k asks k times the first attempt's memory and
runtime (Snakemake passes `attempt` to callable resources; `retries` in the profile or
`--retries N` sets how many attempts)."""


def grows_with_attempt(first: int):
    """A Snakemake resource callable: `first` at attempt 1, `k * first` at attempt k."""

    def value(wildcards, attempt: int) -> int:
        return int(first) * int(attempt)

    return value
