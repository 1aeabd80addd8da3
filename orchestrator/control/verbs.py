"""What each control-channel verb does to the running supervisor: status, restart, stop, start,
reload.

A small fixed set; runs on the supervisor's thread, answers through the request's reply callback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.control.server import VERBS
from orchestrator.run.changes import Notice, ServiceStateChanged, TurnEnded, settles
from orchestrator.run.events import ControlRequested
from orchestrator.run.states import State

if TYPE_CHECKING:
    from orchestrator.run.service import ServiceRun
    from orchestrator.run.supervisor import Supervisor


def handle(sup: Supervisor, request: ControlRequested) -> None:
    if request.verb not in VERBS:
        request.reply({"ok": False, "error": f"unknown verb {request.verb!r}"})
        return
    if request.verb == "status":
        live = {"manifest": sup.live.state()} if sup.live is not None else {}
        request.reply({"ok": True, **sup.status(), "run": run_facts(sup), **live})
        return
    if request.verb == "reload":
        if sup.live is None:
            request.reply({"ok": False, "error": "this devup does not follow its manifest"})
            return
        ok, text = sup.live.reload()
        request.reply({"ok": True, "summary": text} if ok else {"ok": False, "error": text})
        return
    manifest_error = None
    if request.verb in ("restart", "start") and sup.live is not None:
        # `devup restart NAME` restarts with devports.toml as it is now.
        ok, text = sup.live.reload(quiet_if_unchanged=True)
        manifest_error = None if ok else text
    unknown = [n for n in request.names if n not in sup.services or n in sup.retiring]
    if unknown:
        request.reply({"ok": False, "error": f"unknown service {unknown[0]!r}", "unknown": unknown})
        return
    if request.verb == "stop" and not request.names:
        request.reply({"ok": True, "stopping": "all"})
        sup.say("stop requested, stopping all services")
        sup.shutdown(0)
        return
    targets = [sup.services[n] for n in request.names]
    wait = bool(request.options.get("wait", True))
    gather = _Gather(request, targets, wait, manifest_error)
    if wait:  # before acting: a target may settle at once (start of a service that is up)
        gather.arm(sup)
    for svc in targets:
        if request.verb == "restart":
            sup.say(f"{svc.name}: restart requested")
            if sup.watch_again(svc):
                sup.say(f"{svc.name}: watching its files again")
            sup.request_restart(svc)
        elif request.verb == "stop":
            sup.say(f"{svc.name}: stop requested")
            sup.stop_service(svc)
        else:
            sup.start_service(svc)
    if not wait:  # after acting, so the answer shows the states the request led to
        gather.arm(sup)


def run_facts(sup: Supervisor) -> dict[str, Any]:
    """What `devup restart/start/stop` needs without loading the manifest (remote.control): the
    timeouts of the version of devports.toml this devup runs (and the file it read)."""
    from orchestrator.control.remote import settle_timeout

    return {
        "manifest": str(sup.manifest.path),
        "manifest_mtime_ns": sup.manifest.mtime_ns,
        "stop_timeout_s": sup.manifest.settings.stop_timeout_s,
        "settle_timeout_s": settle_timeout(sup.manifest),
        "ports": sup.ports,  # every service's port in start order, for `devup ports`
    }


class _Gather:
    """Answers once every target has settled (ready, running, stopped or crashed): a subscriber
    of the run's state changes from the request on."""

    def __init__(
        self,
        request: ControlRequested,
        targets: list[ServiceRun],
        wait: bool,
        manifest_error: str | None = None,
    ) -> None:
        self._request = request
        # devports.toml did not parse: the services restart with the version the run has.
        self._extra = {"manifest_error": manifest_error} if manifest_error else {}
        self._pending = {svc.name for svc in targets}
        self._results: dict[str, str] = {}
        self._failed: list[str] = []  # restart/start targets that did not come up
        self._targets = targets
        self._wait = wait

    def arm(self, sup: Supervisor) -> None:
        if not self._wait:
            self._request.reply(
                {
                    "ok": True,
                    "services": {s.name: s.state.value for s in self._targets},
                    **self._extra,
                }
            )
            return
        self._unsubscribe = sup.subscribe(self._hear)

    def _hear(self, notice: Notice) -> None:
        if isinstance(notice, ServiceStateChanged):
            if notice.name in self._pending and settles(notice):
                self._done(notice.name, notice.new)
        elif isinstance(notice, TurnEnded):
            for svc in self._targets:  # settled already, the request changed nothing
                if svc.name in self._pending and svc.state in _SETTLED:
                    self._done(svc.name, svc.state)

    def _done(self, name: str, state: State) -> None:
        svc = next(s for s in self._targets if s.name == name)
        self._results[name] = state.value
        task_done = svc.is_task and state is State.STOPPED and svc.exit_code == 0
        if not (state in (State.READY, State.RUNNING) or task_done):
            self._failed.append(name)
        self._pending.discard(name)
        if not self._pending:
            self._unsubscribe()
            ok = all(s not in (State.CRASHED.value,) for s in self._results.values())
            self._request.reply(
                {"ok": ok, "services": self._results, "failed": self._failed, **self._extra}
            )


_SETTLED = (State.READY, State.RUNNING, State.STOPPED, State.CRASHED)
