"""The start's summary waits for a service that a file change restarts while it is starting: a
service stopping on its way to a restart is not settled, it is not "not up"."""

from __future__ import annotations

from conftest import DevupProcess, Project, py

# Listens on PORT only once app.py says v = 2; takes a while to stop (a server closing down).
SLOW_TO_STOP = py(
    """
    import os, signal, socket, sys, time
    signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.5), sys.exit(0)))
    if open("app.py").read().strip() == "v = 2":
        s = socket.socket()
        s.bind(("127.0.0.1", int(os.environ["PORT"])))
        s.listen()
        print("listening", flush=True)
    while True:
        time.sleep(1)
    """
)


def test_a_service_restarted_while_starting_is_waited_for_by_the_summary(
    project: Project, running: list[DevupProcess]
) -> None:
    project.write(f"[services.api]\ncmd = '''{SLOW_TO_STOP}'''\n", **{"app.py": "v = 1\n"})
    run = project.start()
    running.append(run)
    run.expect_line(r"api started \(pid")
    (project.root / "app.py").write_text("v = 2\n")
    run.expect_lines(r"api: app\.py changed, restarting", r"1 service up in")
    assert not any("not up" in line for line in run.lines), run.lines
    assert run.stop() == 130
