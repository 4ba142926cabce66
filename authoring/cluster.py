"""``--cluster``: the runner a value names (``authoring.runner`` has the runners themselves)."""

from __future__ import annotations

from authoring.runner import DEFAULT_RETRIES, ClusterError, LocalRunner, TaskRunner

CLUSTER_CHOICES = "none, local, auto or ray://HOST:PORT"


def open_runner(
    cluster: str,
    *,
    local_cpus: int | None = None,
    local_gpus: int | None = None,
    retries: int = DEFAULT_RETRIES,
) -> TaskRunner:
    """The runner ``--cluster`` names; ClusterError (one line) when it cannot be used.

    ``local_cpus`` / ``local_gpus`` size a ``local`` cluster (default: all of this machine's).
    """
    if cluster == "none":
        return LocalRunner()
    if cluster not in ("local", "auto") and not cluster.startswith("ray://"):
        raise ClusterError(f"--cluster {cluster!r}: expected {CLUSTER_CHOICES}")
    try:
        from authoring.ray_runner import RayRunner
    except ImportError as error:
        raise ClusterError(
            f"--cluster {cluster} needs Ray ({error}); install the extra: pip install '.[cluster]'"
        ) from None
    return RayRunner(cluster, local_cpus=local_cpus, local_gpus=local_gpus, retries=retries)
