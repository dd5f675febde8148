"""Check a weblog in a real browser: headless Chromium driven over the Chrome DevTools protocol.

`check_weblog(index)` opens `index.html`, follows every link of every page it reaches (HTML pages
are opened; every other target -- FITS, PNG, MP4, logs -- must exist), records console errors,
uncaught exceptions and failed resource loads, flags blank pages, and saves one screenshot per page
type (`<body data-page=...>`). Any `http(s)` resource is an error: the weblog must work offline.

Chromium is Debian's `chromium` (bin/setup.sh installs it); the protocol client is
`websocket-client`. Used by the tests of the weblog and usable by hand::

    python -m lwa_stack.browser run/10h/weblog/index.html shots/
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lwa_common.errors import LwaError

__all__ = ["CHROMIUM_FLAGS", "find_chromium", "WeblogCheck", "check_weblog"]

log = logging.getLogger(__name__)

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio",
                  "--window-size=1280,900")
_LINKS_JS = """(() => {
  const out = [];
  for (const e of document.querySelectorAll('a[href], img[src], video[src], video[poster], source[src], '
                                            + 'link[href], script[src], iframe[src]')) {
    for (const a of ['href', 'src', 'poster']) { if (e.getAttribute(a)) out.push(e[a] || e.getAttribute(a)); }
  }
  const broken = [...document.images].filter(i => i.getAttribute('src') && !i.src.startsWith('data:')
                                          && i.complete && i.naturalWidth === 0).map(i => i.src);
  return JSON.stringify({links: out, text: document.body ? document.body.innerText.trim().length : 0,
                         page: document.body ? (document.body.dataset.page || '') : '', broken: broken,
                         title: document.title});
})()"""


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian's `chromium`, or a headless shell), else None."""
    for name in ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class WeblogCheck:
    """What the browser saw."""

    pages: list[str] = field(default_factory=list)
    files_checked: int = 0
    broken: list[tuple[str, str]] = field(default_factory=list)  # (page, target)
    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (page, message)
    blank: list[str] = field(default_factory=list)
    network: list[tuple[str, str]] = field(default_factory=list)
    screenshots: dict[str, Path] = field(default_factory=dict)  # page type -> PNG

    @property
    def ok(self) -> bool:
        return not (self.broken or self.console_errors or self.blank or self.network)

    def problems(self) -> str:
        lines = [f"broken link on {p}: {t}" for p, t in self.broken]
        lines += [f"console error on {p}: {m}" for p, m in self.console_errors]
        lines += [f"blank page: {p}" for p in self.blank]
        lines += [f"network resource on {p}: {t}" for p, t in self.network]
        return "\n".join(lines)


class _Cdp:
    """A minimal DevTools-protocol session on one page target."""

    def __init__(self, ws_url: str, timeout_s: float) -> None:
        import websocket  # websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=timeout_s, suppress_origin=True)
        self.timeout_s = timeout_s
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.timeout_s:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise LwaError(f"DevTools {method} failed: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise LwaError(f"DevTools {method}: no answer in {self.timeout_s} s")

    def wait_event(self, method: str) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.timeout_s:
            if any(e["method"] == method for e in self.events):
                return
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
        raise LwaError(f"DevTools: no {method} in {self.timeout_s} s")

    def close(self) -> None:
        self.ws.close()


@contextmanager
def _chromium(timeout_s: float) -> Iterator[_Cdp]:
    exe = find_chromium()
    if exe is None:
        raise LwaError("chromium not found on PATH (bin/setup.sh installs Debian's chromium)")
    # chromium's helper processes (renderer, GPU, utility) outlive a terminated parent and keep writing
    # into the profile: it runs in its own process group, and the whole group is ended.
    with tempfile.TemporaryDirectory(prefix="lwa-chromium-", ignore_cleanup_errors=True) as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
        log.info("browser: %s", " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            t0 = time.monotonic()
            while not port_file.exists() or len(port_file.read_text().split()) < 2:
                if proc.poll() is not None or time.monotonic() - t0 > timeout_s:
                    raise LwaError(f"chromium did not start (exit {proc.poll()})")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout_s) as resp:
                targets = json.load(resp)
            page = next(t for t in targets if t.get("type") == "page")
            cdp = _Cdp(page["webSocketDebuggerUrl"], timeout_s)
            try:
                for domain in ("Page", "Runtime", "Log"):
                    cdp.call(f"{domain}.enable")
                yield cdp
            finally:
                cdp.close()
        finally:
            _end_group(proc)


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM to chromium's process group, up to 10 s for the parent, then SIGKILL to what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # helpers still alive after the parent
    except ProcessLookupError:
        pass
    proc.wait()


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
    return out


def _local_path(url: str) -> Path | None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        return None
    return Path(urllib.parse.unquote(parts.path))


def check_weblog(index: str | Path, screenshot_dir: str | Path | None = None, *, timeout_s: float = 60.0,
                 max_pages: int = 2000) -> WeblogCheck:
    """Open `index` in headless Chromium and follow every link (see the module docstring)."""
    index = Path(index).resolve()
    if not index.is_file():
        raise LwaError(f"weblog index not found: {index}")
    shots = Path(screenshot_dir) if screenshot_dir else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    result = WeblogCheck()
    queue, seen, files = [index], {index}, set()
    with _chromium(timeout_s) as cdp:
        while queue and len(result.pages) < max_pages:
            page = queue.pop(0)
            name = str(page.relative_to(index.parent)) if page.is_relative_to(index.parent) else str(page)
            cdp.events.clear()
            cdp.call("Page.navigate", url=page.as_uri())
            cdp.wait_event("Page.loadEventFired")
            info = json.loads(cdp.call("Runtime.evaluate", expression=_LINKS_JS, returnByValue=True)["result"]["value"])
            time.sleep(0.05)
            cdp.call("Runtime.evaluate", expression="0")  # drain events raised after load
            result.pages.append(name)
            result.console_errors += [(name, m) for m in _errors(cdp.events)]
            result.broken += [(name, b) for b in dict.fromkeys(info["broken"])]
            if info["text"] < 40:
                result.blank.append(name)
            kind = info["page"] or "page"
            if shots and kind not in result.screenshots:
                import base64

                data = cdp.call("Page.captureScreenshot", format="png")["data"]
                out = shots / f"{kind}.png"
                out.write_bytes(base64.b64decode(data))
                result.screenshots[kind] = out
            for url in info["links"]:
                if url.startswith(("javascript:", "data:", "#", "mailto:")):
                    continue
                path = _local_path(url)
                if path is None:
                    if url.startswith(("http:", "https:", "//")):
                        result.network.append((name, url))
                    continue
                if not path.exists():
                    if (name, url) not in result.broken:
                        result.broken.append((name, url))
                elif path.suffix == ".html" and path not in seen:
                    seen.add(path)
                    queue.append(path)
                elif path.suffix != ".html":
                    files.add(path)
    result.files_checked = len(files)
    log.info("browser: %d pages, %d files linked, %d problems", len(result.pages), len(files),
             len(result.broken) + len(result.console_errors) + len(result.blank) + len(result.network))
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write("usage: python -m lwa_stack.browser INDEX.html [SCREENSHOT_DIR]\n")
        return 2
    res = check_weblog(args[0], args[1] if len(args) > 1 else None)
    sys.stdout.write(f"{len(res.pages)} pages, {res.files_checked} files linked\n{res.problems()}\n")
    return 0 if res.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
