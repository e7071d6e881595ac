from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def refresh_cache(registry: str, version: str, events: Input[Dataset], config: dict, cache: str,
                  report: Output[Artifact]) -> str:
    """Write the promoted version's serving values (DMQN user states, the GMV feature blocks)
    into the cache under that version's name, verify them, then flip the cache's pointer.
    Only the registry champion is refreshed (the pointer may lag the champion, never lead
    it); a version already active is left alone. Returns "refreshed", "noop" or "skipped".

    Args:
        registry: URL of the model registry.
        version: the version promoted by this run.
        events: the run's events table (purchase lines before run_date).
        config: the run configuration (its "cache" section: keep, batch_size, state_dtype,
            active_days, ...).
        cache: where the cache is: "" = the task's QUANTREC_REDIS_URL / REDIS_URL environment
            variable (mount it from a secret: a password must not be a pipeline parameter), a
            redis:// URL (password from REDIS_PASSWORD), or a folder for the embedded Redis
            (local runs).
    """
    from components._meta import attach, say
    from quantrec.serving.refresh import CacheConfig
    from quantrec.stages.refresh_cache import refresh_cache_stage

    out = refresh_cache_stage(registry, version, events.path, cache, CacheConfig.from_run_config(config),
                              report.path)
    keep = ("status", "reason", "version", "as_of", "server", "previous", "active", "users", "items", "pairs",
            "bytes", "seconds", "verification")
    attach(report, {k: out[k] for k in keep if k in out})
    say(f"cache {out['status']}: {out.get('reason', '')}"
        + (f" ({out['users']} users, {out['items']} items, {out['pairs']} pairs, {out['bytes'] / 1e6:.1f} MB "
           f"in {out['seconds']['total']:.1f} s)" if out["status"] == "refreshed" else ""))
    return out["status"]
