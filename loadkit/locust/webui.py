"""Internal: loadkit in locust's web UI: a ``loadkit`` tab, ``/loadkit/stats`` and the runs'
reports, and where the UI listens.

The tab is built with locust's own extend-web-UI mechanism: ``extendedTabs`` and
``extendedTables`` in the page's template arguments, and an ``extended_stats`` entry added to
every ``/stats/requests`` answer, which the UI polls (so the tab refreshes as often as
locust's own statistics). Its rows come from :class:`loadkit.live.LiveRun`. A small script
added to the index page makes the report cell a link.

Routes (all behind ``--web-login`` when it is set):

- ``GET /loadkit/stats``: the current run's figures as JSON (the last run's once it ended);
- ``GET /loadkit/runs``: the runs this UI started, with links to their reports;
- ``GET /loadkit/runs/<run id>/report``: a run's report, written on first request.

Everything served passes through the key's redactor, so the key never shows, even where a
target echoed it into a record. The UI binds to 127.0.0.1 unless ``--web-host`` is given.
"""

from __future__ import annotations

import html
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from loadkit.client.answers import Redactor
from loadkit.live import LiveRun, tab_rows

if TYPE_CHECKING:
    from .owner import RunOwner

__all__ = ["LOOPBACK", "TAB_KEY", "bind_web_ui", "install"]

TAB_KEY = "loadkit"
LOOPBACK = "127.0.0.1"
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_STRUCTURE = [{"key": "figure", "title": "loadkit"}, {"key": "value", "title": "value"}]

_SCRIPT = """<script>
/* loadkit: the report cell of the loadkit tab becomes a link (locust's tables show text) */
(function () {
  function linkify() {
    document.querySelectorAll('td').forEach(function (td) {
      var text = td.textContent || '';
      if (text.charAt(0) === '/' && text.indexOf('/loadkit/runs/') >= 0 &&
          !td.querySelector('a')) {
        var a = document.createElement('a');
        a.href = text; a.textContent = text; a.target = '_blank';
        a.className = 'loadkit-report';
        td.textContent = ''; td.appendChild(a);
      }
    });
  }
  new MutationObserver(linkify).observe(document.documentElement,
                                        {childList: true, subtree: true});
})();
</script>"""

log = logging.getLogger("loadkit")


def bind_web_ui(environment: Any) -> None:
    """Keep the web UI on loopback unless ``--web-host`` was given; warn, in one line, when it
    listens beyond loopback without ``--web-login``."""
    web_ui = environment.web_ui
    parsed = environment.parsed_options
    if web_ui is None or parsed is None:
        return
    import gevent  # noqa: PLC0415 - only in a locust process

    gevent.spawn(_announce, web_ui)
    if not (parsed.web_host or "").strip():
        web_ui.host = LOOPBACK
        return
    host = "" if web_ui.host == "*" else web_ui.host
    if host not in _LOOPBACK_NAMES and not getattr(parsed, "web_login", False):
        where = host or "every interface"
        sys.stderr.write(
            f"loadkit: warning: the web UI listens on {where}, beyond loopback, without "
            f"--web-login: anyone who can reach it can start load tests with this "
            f"TRIGGER_SECRET_KEY against {environment.host or 'the target'} and read the runs "
            f"it serves\n")


def _announce(web_ui: Any, timeout: float = 30.0) -> None:
    """One line with the address the UI really listens on (``--web-port 0`` picks one)."""
    import gevent  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = getattr(web_ui, "server", None)
        if server is not None and getattr(server, "started", False):
            host, port = server.address[:2]
            sys.stderr.write(f"loadkit: web UI at http://{host or '0.0.0.0'}:{port}/ "
                             f"(the loadkit tab: /?tab={TAB_KEY})\n")
            sys.stderr.flush()
            return
        gevent.sleep(0.05)


class WebTab:
    """The routes and hooks of one web UI, over the runs of the owner that serves it."""

    def __init__(self, owner: RunOwner, web_ui: Any, prefix: str) -> None:
        self.owner = owner
        self.web_ui = web_ui
        self.prefix = prefix.rstrip("/")
        self.redact = Redactor(owner.secret_key)
        self.runs: dict[str, LiveRun] = {}
        """The runs this UI started, by run id, in order."""
        self.error: str | None = None
        """Why the last Start could not open its run (until the next one does)."""

    @property
    def current(self) -> LiveRun | None:
        return next(reversed(self.runs.values()), None) if self.runs else None

    def report_path(self, run_id: str) -> str:
        return f"{self.prefix}/loadkit/runs/{run_id}/report"

    # -- what the owner calls ---------------------------------------------------------------

    def run_started(self, live: LiveRun) -> None:
        self.error = None
        self.runs[live.run_id] = live

    def run_failed(self, message: str) -> None:
        self.error = message

    def run_ended(self, live: LiveRun, table: Any = None) -> None:
        live.end(report_url=self.report_path(live.run_id), table=table)

    # -- routes -----------------------------------------------------------------------------

    def install(self) -> None:
        app, guard = self.web_ui.app, self.web_ui.auth_required_if_enabled
        self.web_ui.template_args["extendedTabs"] = [{"title": "loadkit", "key": TAB_KEY}]
        self.web_ui.template_args["extendedTables"] = [{"key": TAB_KEY,
                                                        "structure": _STRUCTURE}]
        self.web_ui.template_args["extendedCsvFiles"] = [
            {"href": f"{self.prefix}/loadkit/runs", "title": "loadkit: runs and reports"}]

        def route(path: str, name: str, view: Callable[..., Any]) -> None:
            app.add_url_rule(self.prefix + path, endpoint=f"loadkit_{name}",
                             view_func=guard(view))

        route("/loadkit/stats", "stats", self._stats)
        route("/loadkit/runs", "runs", self._runs_page)
        route("/loadkit/runs/<run_id>/report", "report", self._report)
        app.before_request(self._before)
        app.after_request(self._after)
        app.wsgi_app = _SameOriginOnly(app.wsgi_app)

    def _json(self, data: Any, status: int = 200) -> Any:
        from flask import Response  # noqa: PLC0415 - flask comes with locust

        body = orjson.dumps(self.redact(data), option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(body, status=status, mimetype="application/json")

    def _snapshot(self) -> dict[str, Any] | None:
        live = self.current
        return None if live is None else live.snapshot()

    def _stats(self) -> Any:
        if self.error is not None:
            return self._json({"run_id": None, "state": "error", "message": self.error})
        snap = self._snapshot()
        if snap is None:
            return self._json({"run_id": None, "state": "idle",
                               "message": "no test started yet"})
        return self._json(snap)

    def _runs_page(self) -> Any:
        from flask import Response  # noqa: PLC0415

        rows = []
        for run_id, live in reversed(self.runs.items()):
            snap = live.snapshot()
            link = (f'<a href="{html.escape(self.report_path(run_id))}">report</a>'
                    if not live.running else "running")
            rows.append(f"<tr><td>{html.escape(run_id)}</td><td>{link}</td>"
                        f"<td>{snap['batches']:,} batches</td>"
                        f"<td>{html.escape(live.run_dir)}</td></tr>")
        body = ("<!doctype html><meta charset='utf-8'><title>loadkit runs</title>"
                "<h1>loadkit runs</h1>"
                + ("<table>" + "".join(rows) + "</table>" if rows
                   else "<p>No test started yet.</p>"))
        return Response(self.redact(body), mimetype="text/html")

    def _report_dir(self, run_id: str) -> Path | None:
        """The run's report folder, written on first request (None: no such ended run)."""
        live = self.runs.get(run_id)
        if live is None or live.running:
            return None
        out = Path(live.run_dir) / "report"
        if not (out / "report.html").exists():
            from loadkit.report import write_report  # noqa: PLC0415 - matplotlib on demand

            write_report(live.run_dir, out)
        return out

    def _report(self, run_id: str) -> Any:
        from flask import Response  # noqa: PLC0415

        out = self._report_dir(run_id)
        if out is None:
            return Response("no ended run with this id in this web UI\n", status=404,
                            mimetype="text/plain")
        page = (out / "report.html").read_text(encoding="utf-8")  # images inline
        return Response(self.redact(page), mimetype="text/html")

    # -- the tab's rows, in locust's own stats answer ----------------------------------------

    def _before(self) -> Any:
        """Refuse what a web page elsewhere could make the user's browser do: a start or stop
        sent from another origin, a request to a name that is not the UI's own (DNS
        rebinding), and a start that points the load, and the key, at another target."""
        from flask import Response, request  # noqa: PLC0415

        def refuse(why: str) -> Any:
            log.warning("loadkit: refused %s %s: %s", request.method, request.path, why)
            return Response(f"loadkit: {why}\n", status=403, mimetype="text/plain")

        if self._loopback() and request.host.rsplit(":", 1)[0].strip("[]") not in \
                _LOOPBACK_NAMES:
            return refuse(f"the UI answers to 127.0.0.1 or localhost, not {request.host}")
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        origin = request.headers.get("Origin") or request.headers.get("Referer")
        if origin:
            parts = urlsplit(origin)
            if f"{parts.scheme}://{parts.netloc}" != request.host_url.rstrip("/"):
                return refuse(f"a request from another origin ({origin})")
        if request.path == f"{self.prefix}/swarm":
            host = (request.form.get("host") or "").strip().rstrip("/")
            target = (self.owner.target or "").rstrip("/")
            if host and host != target:
                return refuse(f"the target of this session is {target}; start loadkit again "
                              f"with --host to load another")
        return None

    def _loopback(self) -> bool:
        return str(getattr(self.web_ui, "host", "")) in _LOOPBACK_NAMES

    def _after(self, response: Any) -> Any:
        """The tab's rows in locust's own stats answer; the link script in the index page;
        the key out of every page and answer."""
        from flask import request  # noqa: PLC0415

        if response.direct_passthrough:  # files (the UI's assets) are sent as they are
            return response
        mimetype = response.mimetype or ""
        if not (mimetype.startswith("text/") or mimetype == "application/json"):
            return response
        try:
            path = request.path
            if path == f"{self.prefix}/stats/requests" and response.status_code == 200:
                data = response.get_json(silent=True)
                if isinstance(data, dict):
                    data["extended_stats"] = [{"key": TAB_KEY, "data": self._rows()}]
                    response.set_data(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY))
            elif path in (f"{self.prefix}/", self.prefix or "/") and mimetype == "text/html":
                page = response.get_data(as_text=True)
                if "</body>" in page and "loadkit-report" not in page:
                    response.set_data(page.replace("</body>", _SCRIPT + "</body>", 1))
            response.set_data(self.redact(response.get_data()))
        except Exception:  # the tab must never break locust's own UI
            log.exception("loadkit: the web UI's loadkit rows failed")
        return response

    def _rows(self) -> list[dict[str, str]]:
        if self.error is not None:
            return [{"figure": "error", "value": self.error}]
        try:
            return tab_rows(self._snapshot())
        except Exception as exc:
            log.exception("loadkit: the loadkit tab's figures failed")
            return [{"figure": "error", "value": f"the figures could not be computed: {exc}"}]


class _SameOriginOnly:
    """WSGI middleware: drops the CORS headers locust's app adds to every answer (it lets any
    origin read them), so that a page elsewhere cannot read what the UI serves."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept, *rest)

        return self.app(environ, start)


def install(owner: RunOwner) -> WebTab | None:
    """Add loadkit's tab and routes to the owner's web UI (None without a web UI)."""
    env = owner.environment
    web_ui = getattr(env, "web_ui", None)
    if web_ui is None:
        return None
    prefix = (getattr(env.parsed_options, "web_base_path", None) or "")
    tab = WebTab(owner, web_ui, prefix)
    tab.install()
    return tab
