"""gather, report (QA scores, colours) and the SMTP e-mail against a local loopback server."""

from __future__ import annotations

import base64
import email
import json
import re
import socketserver
import threading

import pandas as pd
import pytest
from astropy.io import fits

from lwa_common.config import load_config
from lwa_common.errors import LwaError
from lwa_common.testing import run_cli
from lwa_stack.gather import gather, write_summary
from lwa_stack.mail import build_message, is_loopback, send_message, smtp_settings
from lwa_stack.report import build_report, score_colour
from lwa_stack.stack import bands_from_config, wideband

CFG = load_config()
PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def rundir(synth, tmp_path):
    run = synth.run
    for sb in (55, 59):
        synth.make(sb, stokes="V", noise=0.8)
        synth.make(sb, stokes="I", noise=1.0)
    wideband([run], outdir=run / "Wideband", bands=bands_from_config(CFG.stack.bands_mhz))
    det = run / "55MHz" / "detections"
    det.mkdir(parents=True)
    pd.DataFrame({"Target": ["TargetA", "TargetA"], "Freq_MHz": [57.0, 57.0], "I_Src_Jy": [1.5, 0.2],
                  "Detection": [True, False], "subband": ["55MHz", "55MHz"]}).to_csv(det / "TargetA_photometry.csv",
                                                                                   index=False)
    (det / "TargetA_55MHz_cutout.fits").write_bytes(b"x" * 2880)
    (det / "TargetA_55MHz.png").write_bytes(b"\x89PNG fake")
    pd.DataFrame({"Target": ["TargetB"], "Detection": ["False"]}).to_csv(det / "TargetB_photometry.csv", index=False)
    (det / "SolarSystem").mkdir()
    pd.DataFrame({"Target": ["Jupiter"], "Detection": ["true"], "I_Src_Jy": [12.0]}).to_csv(
        det / "SolarSystem" / "Jupiter_photometry.csv", index=False)
    # lwa-cutout layout and columns: OUTPUT/<target>/<target>_photometry.csv, `target`, `detected`
    cut = run / "55MHz" / "cutouts" / "TargetC"
    cut.mkdir(parents=True)
    pd.DataFrame({"target": ["TargetC", "TargetC"], "subband": ["55MHz", "55MHz"], "freq_mhz": [57.03, 57.03],
                  "interval": ["deep", "t0001"], "pos_ra_deg": [150.1, 150.1], "pos_dec_deg": [40.2, 40.2],
                  "I_peak_jy": [0.8, 2.5], "I_snr": [3.0, 9.5], "V_peak_jy": [0.1, 0.2], "detection_stokes": ["I", "I"],
                  "detected": [False, True]}).to_csv(cut / "TargetC_photometry.csv", index=False)
    (run / "55MHz" / "solar" / "moon").mkdir(parents=True)
    pd.DataFrame({"target": ["moon"], "detected": [False]}).to_csv(run / "55MHz" / "solar" / "moon" /
                                                                    "moon_photometry.csv", index=False)
    tr = run / "55MHz" / "transients"
    (tr / "J1000+45").mkdir(parents=True)
    pd.DataFrame({"stokes": ["V", "I", "V"], "jname": ["J100012+451000", "J101500+300000", "J110000+200000"],
                  "peak_jy": [3.0, 9.0, 4.0], "snr": [6.1, 8.0, 5.5], "subband": ["55MHz"] * 3,
                  "class": ["candidate", "known", "artefact"]}).to_csv(tr / "candidates.csv", index=False)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 2))
    fig.savefig(tr / "J1000+45" / "J100012+451000_55MHz_V_deep.png")
    fig.savefig(run / "Wideband" / "Wideband_I_deep_NoTaper_mixed_3color.png")
    fig.savefig(run / "Wideband" / "Wideband_I_deep_NoTaper_Robust-0_3color.png")
    (run / "QA").mkdir()
    fig.savefig(run / "QA" / "flux_check.png")
    plt.close(fig)
    pd.DataFrame({"source": ["3C48", "3C147", "3C196"], "ratio": [1.02, 0.93, 2.1]}).to_csv(
        run / "QA" / "flux_check.csv", index=False)
    return run


def test_score_colours_follow_alma_thresholds():
    assert [score_colour(s) for s in (1.0, 0.9, 0.89, 0.66, 0.65, 0.33, 0.32, 0.0, None)] == [
        "green", "green", "blue", "blue", "yellow", "yellow", "red", "red", "grey"]


def test_gather_finds_detections(rundir, tmp_path):
    summary = gather([rundir])
    assert summary["counts"] == {"solar_system": 1, "target": 2, "transient": 2}
    assert summary["files"]["transient_artefacts"] == 1  # the bi-lobe artefact is not a detection
    target = next(d for d in summary["detections"] if d["name"] == "TargetA")
    assert target["kind"] == "target" and target["flux_jy"] == 1.5 and target["freq_mhz"] == 57.0
    c = next(d for d in summary["detections"] if d["name"] == "TargetC")  # lwa-cutout's columns
    assert (c["interval"], c["flux_jy"], c["snr"], c["ra_deg"], c["stokes"]) == ("t0001", 2.5, 9.5, 150.1, "I")
    assert {d["name"] for d in summary["detections"] if d["kind"] == "transient"} == {"J100012+451000",
                                                                                       "J101500+300000"}
    res = run_cli(["lwa-stack", "gather", str(rundir), "-o", str(tmp_path / "sum"), "--json"])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n_detections"] == 5
    df = pd.read_csv(tmp_path / "sum" / "detections_summary.csv")
    assert list(df.columns[:4]) == ["kind", "run", "name", "subband"] and len(df) == 5
    data = json.loads((tmp_path / "sum" / "detections_summary.json").read_text())
    assert data["files"]["photometry_files"] == 5 and len(data["detections"]) == 5
    with pytest.raises(LwaError, match="--overwrite"):
        write_summary(summary, tmp_path / "sum")


def _row_colour(html: str, stage: str) -> str:
    m = re.search(rf"<td>{stage}</td><td class='qa-(\w+)'>([^<]*)</td>", html)
    assert m, stage
    return m.group(1)


def test_report_has_detections_and_score_colours(rundir, tmp_path):
    out = tmp_path / "report.html"
    path, scores, summary = build_report(rundir, output=out, cfg=CFG)
    html = out.read_text()
    for name in ("TargetA", "TargetC", "Jupiter", "J100012+451000", "J101500+300000"):
        assert name in html
    assert "TargetB" not in html and "J110000+200000" not in html  # not detected / artefact
    by = {s.stage: s for s in scores}
    assert by["color"].score == pytest.approx(2 / 3) and _row_colour(html, "color") == "blue"
    assert by["flux_check"].score == pytest.approx(2 / 3) and _row_colour(html, "flux_check") == "blue"
    assert by["transient"].score == 1.0 and _row_colour(html, "transient") == "green"
    assert by["photometry"].score == 1.0
    # 2 of 17 expected science images per subband: red
    assert by["imaging"].score == pytest.approx(2 / 17) and _row_colour(html, "imaging") == "red"
    assert by["pbcor"].score is None and _row_colour(html, "pbcor") == "grey"
    assert by["wideband"].score > 0.95  # both possible stacks exist, their noise as expected
    assert by["wideband"].detail.startswith("2/2 possible stacks present; stack noise / expected")
    assert by["noise"].score == 1.0
    assert html.count("data:image/png;base64,") == 1 + 1 + 2 + 1  # noise plot, flux, 2 colour, 1 transient
    assert "qa-red" in html and "qa-green" in html and "#9ad29a" in html


def test_wideband_score_drops_when_stacks_missing_or_noisy(rundir, tmp_path):
    stack = rundir / "Wideband" / "Wideband_Green_V_deep_Taper_Robust-0.fits"
    with fits.open(stack, mode="update") as hdul:
        hdul[0].header["STKRMS"] = hdul[0].header["STKRMS"] / 3  # measured noise 3x the expectation
    (rundir / "Wideband" / "Wideband_Green_I_deep_Taper_Robust-0.fits").unlink()
    _, scores, _ = build_report(rundir, output=tmp_path / "r.html", cfg=CFG)
    wb = next(s for s in scores if s.stage == "wideband")
    assert wb.score == pytest.approx((1 / 2 + 1 / 3) / 2, rel=0.05) and wb.colour == "yellow"
    res = run_cli(["lwa-stack", "noise", str(rundir / "Wideband"), "-o", str(tmp_path / "n" / "thermal_noise.csv")])
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(tmp_path / "n" / "thermal_noise.csv")["imgcat"].tolist() == ["stack"]


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    def _send(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._send("220 localhost test SMTP")
        mail = {"rcpt": [], "auth": None}
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self._send("250-localhost")
                self._send("250 AUTH PLAIN")
            elif verb == "AUTH":
                parts = line.split()
                mail["auth"] = base64.b64decode(parts[2]).split(b"\0") if len(parts) > 2 else None
                self._send("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                mail["from"] = line
                self._send("250 OK")
            elif verb == "RCPT":
                mail["rcpt"].append(line)
                self._send("250 OK")
            elif verb == "DATA":
                self._send("354 End data with <CR><LF>.<CR><LF>")
                body = []
                while (chunk := self.rfile.readline(1 << 20)) not in (b".\r\n", b""):
                    body.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                mail["data"] = b"".join(body)
                self.server.messages.append(dict(mail))
                self._send("250 OK queued")
            elif verb == "QUIT":
                self._send("221 Bye")
                return
            else:
                self._send("250 OK")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_report_email_reaches_local_smtp_server(rundir, tmp_path, smtp_server):
    host, port = smtp_server.server_address
    env = {"LWA_SMTP_HOST": host, "LWA_SMTP_PORT": str(port), "LWA_SMTP_USER": "pipe",
           "LWA_SMTP_PASSWORD": PASSWORD}
    log_file = tmp_path / "report.log"
    res = run_cli(["lwa-stack", "report", str(rundir), "-o", str(tmp_path / "report.html"), "--email-to",
                   "team@example.org", "--email-to", "pi@example.org", "--email-from", "lwa@example.org", "-vv",
                   "--log-file", str(log_file)], env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert mail["auth"] == [b"", b"pipe", PASSWORD.encode()]
    assert len(mail["rcpt"]) == 2 and "lwa@example.org" in mail["from"]
    msg = email.message_from_bytes(mail["data"])
    assert msg["To"] == "team@example.org, pi@example.org"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart()}
    assert "TargetA" in parts["text/html"] and "qa-red" in parts["text/html"]
    assert "Detections: 5" in parts["text/plain"]
    assert PASSWORD not in res.stderr and PASSWORD not in log_file.read_text() and PASSWORD not in res.stdout
    assert f"127.0.0.1:{port}" in log_file.read_text()
    assert PASSWORD not in repr(smtp_settings(None, env))


def test_smtp_refuses_clear_text_password_to_remote_host_and_reports_failure():
    assert is_loopback("127.0.0.5") and is_loopback("localhost") and not is_loopback("smtp.example.org")
    settings = smtp_settings(None, {"LWA_SMTP_HOST": "127.0.0.1", "LWA_SMTP_PORT": "9"})
    msg = build_message("<p>x</p>", subject="s", sender="a@b", to=["c@d"])
    with pytest.raises(LwaError, match="sending e-mail via 127.0.0.1:9 failed"):
        send_message(msg, settings)  # nothing listens on the discard port
    with pytest.raises(LwaError, match="port"):
        smtp_settings(None, {"LWA_SMTP_PORT": "abc"})
    assert smtp_settings(None, {"LWA_SMTP_HOST": "h"}, host="opt").host == "opt"  # option beats env


def test_counterpart_scores(synth):
    for sb in (55, 59):
        synth.make(sb, stokes="I", dewarped=False)
        synth.make(sb, stokes="V", dewarped=False)
        synth.make(sb, stokes="I", dewarped=True)  # both subbands dewarped I, no dewarped V
    synth.make(55, stokes="I", dewarped=False, pbcor=True)
    from lwa_stack.report import qa_scores

    by = {s.stage: s for s in qa_scores(synth.run, cfg=CFG)}
    assert by["dewarp"].score == pytest.approx(0.5) and by["dewarp"].colour == "yellow"
    assert by["pbcor"].score == pytest.approx(0.25) and by["pbcor"].colour == "red"
    assert by["imaging"].score == pytest.approx(2 / 17)
