"""gather, the weblog (QA scores from measured quantities, pages, links) and the SMTP e-mail against a
local loopback server."""

from __future__ import annotations

import base64
import email
import json
import re
import socketserver
import threading
import urllib.parse

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from lwa_common.config import load_config
from lwa_common.errors import LwaError
from lwa_common.testing import run_cli
from lwa_stack.gather import gather, write_summary
from lwa_stack.mail import build_message, is_loopback, send_message, smtp_settings
from lwa_stack.qa import collect_run, score_colour
from lwa_stack.report import build_weblog, dedup_transients
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
    a = next(d for d in summary["detections"] if d["name"] == "J100012+451000")  # no position: blank
    assert a["ra_deg"] is None
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


def _log(folder, name: str, command: str, *, rc: int | None = 0, wall: int = 3, text: str = "") -> None:
    """A driver step log as bin/run_hour.sh writes it (command line, output, exit line, done marker)."""
    folder.mkdir(parents=True, exist_ok=True)
    tail = f"# lwa-pipe step {name}: exit {rc} after {wall} s\n" if rc is not None else ""
    (folder / f"{name}.log").write_text(f"$ {command}\n{text}{tail}")
    if rc == 0:
        (folder / f".{name}.done").touch()


@pytest.fixture
def logged_run(rundir):
    """The synthetic run with the driver's logs: science done, color skipped (one band), a failed
    wideband search, a non-converged fit of a detection, and state.json one folder up."""
    logs = rundir / "55MHz" / "logs"
    _log(logs, "science", "lwa-image science x.ms -o 55MHz/images", wall=120)
    _log(logs, "pbcor", "lwa-image pbcor 55MHz/images/a.fits", wall=4)
    _log(logs, "transients", "lwa-transient search 55MHz/images -o 55MHz/transients", wall=7)
    _log(logs, "targets", "lwa-cutout targets t.csv --images 55MHz/images -o 55MHz/photometry", wall=2)
    agg = rundir / "logs"
    _log(agg, "wideband", "lwa-stack wideband 55MHz/images 59MHz/images -o Wideband", wall=30)
    _log(agg, "color", "lwa-stack color Wideband -o Wideband",
         text="12:00:00 WARNING lwa_stack.color: skipped: a 3-colour image needs two bands; this run has Green\n")
    _log(agg, "wideband-search", "lwa-transient search Wideband -o Wideband/transients", rc=2, wall=1,
         text="lwa-stack: error: something broke\n")
    (rundir.parent / "state.json").write_text(json.dumps({"date": "2024-12-20", "range": "10h-11h",
                                                          "subbands": {f"{rundir.name}/55MHz": {"image": "done"}}}))
    phot = rundir / "55MHz" / "photometry" / "TargetD"
    phot.mkdir(parents=True)
    pd.DataFrame({"target": ["TargetD"] * 3, "subband": ["55MHz"] * 3, "interval": ["deep", "t0001", "t0002"],
                  "I_peak_jy": [5.0, 4.0, 6.0], "I_rms_jy": [0.5, 0.6, 0.6], "I_detected": [True, True, True],
                  "I_note": ["", "", ""], "V_peak_jy": [2.0, 0.4, 9.0], "V_rms_jy": [0.2, 0.3, 0.3],
                  "V_detected": [True, False, True], "V_note": ["", "", "Gaussian fit may not have converged"],
                  "detected": [True, True, True]}).to_csv(phot / "TargetD_photometry.csv", index=False)
    return rundir


def test_weblog_scores_pages_and_links(logged_run, tmp_path):
    out = tmp_path / "weblog"
    index, run, summary = build_weblog(logged_run, output=out, cfg=CFG)
    by = {(s.subband, s.stage): s for s in run.scores}
    # statuses come from the logs: nothing that ran shows "not run"
    assert by[("run", "color")].status == "skipped" and by[("run", "color")].label == "skipped"
    assert by[("run", "color")].detail.startswith("skipped: a 3-colour image needs two bands")
    assert by[("run", "wideband-search")].label == "FAILED" and by[("run", "wideband-search")].colour == "red"
    assert by[("55MHz", "movie")].label == "not run" and by[("59MHz", "imaging")].status == "not run"
    # 2 of 17 expected science images: red; its beam is measured against its pixels
    assert by[("55MHz", "imaging")].score == pytest.approx(2 / 17)
    assert by[("55MHz", "imaging")].wall_s == 120
    # the non-converged fit of a detection is a red item naming the cause; the photometry stays red
    phot = by[("55MHz", "photometry")]
    assert any("TargetD" in it and "t0002" in it and "not have converged" in it for it in phot.items)
    assert phot.value <= 0.32 and phot.colour == "red"
    assert by[("run", "wideband")].score > 0.95
    assert run.overall == 0.0  # a failed stage
    html = index.read_text()
    from lwa_common.provenance import tool_version

    assert "2024-12-20" in html and "10h-11h" in html and f"lwa-pipe {tool_version('lwa-stack')}" in html
    assert html.count("qa-red") >= 2 and "TargetD" in html  # the red item is listed on the index
    assert "http://" not in html and "https://" not in html
    # every stage and subband has a page; each names its formula and the exact command
    page = (out / "stages" / "55MHz_imaging.html").read_text()
    assert "lwa-image science x.ms -o 55MHz/images" in page and "present / expected" in page
    assert (out / "stages" / "run_color.html").exists() and (out / "stages" / "59MHz_flag.html").exists()
    cmds = (out / "commands.sh").read_text().splitlines()
    assert cmds[0] == "#!/usr/bin/env bash"
    order = [" ".join(c.split()[:2]) for c in cmds if c.startswith("lwa-")]
    assert order == ["lwa-image science", "lwa-image pbcor", "lwa-cutout targets", "lwa-transient search",
                     "lwa-stack wideband", "lwa-stack color", "lwa-transient search"]
    # a preview PNG per science image, linked to its FITS
    n_images = len([p for p in logged_run.rglob("*.fits") if "detections" not in p.parts])  # not the fake cutout
    assert len(list((out / "previews").glob("*.png"))) == n_images
    images = (out / "images.html").read_text()
    assert len(re.findall(r'href="[^"]+\.fits"', images)) == n_images
    # targets: a page per target, with a lightcurve
    assert (out / "targets" / "TargetD.html").exists() and (out / "plots" / "lightcurve_TargetD.png").exists()
    # every relative link resolves
    for html_file in out.rglob("*.html"):
        for href in re.findall(r'(?:href|src)="([^"#]+)"', html_file.read_text()):
            assert (html_file.parent / urllib.parse.unquote(href)).exists(), (html_file.name, href)
    with pytest.raises(LwaError, match="--overwrite"):
        build_weblog(logged_run, output=out, cfg=CFG)
    build_weblog(logged_run, output=out, cfg=CFG, overwrite=True)  # a rerun replaces it
    assert not list(tmp_path.glob(".weblog*"))


def test_transients_are_deduplicated_with_parsed_coordinates(tmp_path):
    img = tmp_path / "55MHz" / "images"
    img.mkdir(parents=True)
    hdr = fits.Header({"BMAJ": 0.5})
    fits.PrimaryHDU(header=hdr).writeto(img / "a.fits")
    rows = {"stokes": ["V", "V", "V", "I"], "interval": ["t0002"] * 4,
            "ra": ["10h30m00s", "157.6", "200.0", "157.5"], "dec": ["+40:00:00", "40.1", "10.0", "40.0"],
            "jname": ["J1030+40", "J1030+40b", "J1320+10", "J1030+40i"], "snr": [9.0, 7.0, 6.0, 8.0],
            "class": ["candidate"] * 4, "image": [str(img / "a.fits")] * 4}
    for sub, label in (("55MHz/transients", "55MHz"), ("Wideband/transients", "Green")):
        (tmp_path / sub).mkdir(parents=True)
        pd.DataFrame({**rows, "subband": [label] * 4}).to_csv(tmp_path / sub / "candidates.csv", index=False)
    cands = dedup_transients(tmp_path)
    # V at 157.5/40 and 157.6/40.1 (0.12 deg apart, beam 0.5 deg) in both searches -> one; I is separate
    assert len(cands) == 3
    lead = cands[0]
    assert lead["jname"] == "J1030+40" and lead["ra_deg"] == pytest.approx(157.5) and lead["dec_deg"] == 40.0
    assert lead["ra_hms"] == "10:30:00.0" and lead["dec_dms"] == "+40:00:00"
    assert lead["seen_in"] == ["55MHz", "Green"]
    assert len(lead["members"]) == 4


def test_mostly_flagged_interval_is_red(sim_cache, tmp_path):
    """A real MS with interval 2 of 3 flagged: the flag stage is red and names the interval."""
    import shutil

    from casacore.tables import table

    data, _ = sim_cache("qa_flags", {"noise": {"sigma_jy": 1.0}, "sources": []}, n_int=6, n_antennas=8,
                        n_channels=2)
    run = tmp_path / "10h"
    sb = run / "55MHz"
    sb.mkdir(parents=True)
    ms_files = sorted(data.glob("*.ms"))
    ms = sb / "55MHz-10h.ms"
    shutil.copytree(ms_files[0], ms)
    with table(str(ms), readonly=False, ack=False) as t:
        times = np.unique(t.getcol("TIME"))
    # one MS per integration from the simulator: stitch the others in as rows of the same table
    for extra in ms_files[1:]:
        with table(str(extra), ack=False) as src, table(str(ms), readonly=False, ack=False) as dst:
            n0 = dst.nrows()
            dst.addrows(src.nrows())
            for col in ("TIME", "ANTENNA1", "ANTENNA2", "FLAG"):
                dst.putcol(col, src.getcol(col), startrow=n0)
    with table(str(ms), readonly=False, ack=False) as t:
        times = t.getcol("TIME")
        flags = t.getcol("FLAG")
        utimes = np.unique(times)
        assert len(utimes) == 6
        flags[np.isin(times, utimes[2:4])] = True  # the second of three intervals
        t.putcol("FLAG", flags)
    _log(sb / "logs", "flag-rfi", f"lwa-flag rfi {ms} --in-place")
    cfg = load_config(overrides={"imaging": {"intervals_out": 3}})
    qa = collect_run(run, cfg=cfg)
    flag = qa.get("flag", "55MHz")
    assert list(qa.intervals["55MHz"]["flagged_percent"]) == [0.0, 100.0, 0.0]
    assert flag.colour == "red" and any(it.startswith("interval t0002 is 100 % flagged") for it in flag.items)
    assert flag.inputs["flagged fraction F"] == f"{1 / 3:.4f}"


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


def test_report_email_reaches_local_smtp_server(logged_run, tmp_path, smtp_server):
    host, port = smtp_server.server_address
    env = {"LWA_SMTP_HOST": host, "LWA_SMTP_PORT": str(port), "LWA_SMTP_USER": "pipe",
           "LWA_SMTP_PASSWORD": PASSWORD}
    log_file = tmp_path / "report.log"
    res = run_cli(["lwa-stack", "report", str(logged_run), "-o", str(tmp_path / "weblog"), "--email-to",
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
    index = (tmp_path / "weblog" / "index.html").resolve().as_uri()
    assert f'href="{index}"' in parts["text/html"] and "qa-red" in parts["text/html"]  # link + summary table
    assert index in parts["text/plain"] and "Detections: 8" in parts["text/plain"]  # + TargetD x 3
    assert "55MHz    imaging" in parts["text/plain"]
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
        _log(synth.run / f"{sb}MHz" / "logs", "pbcor", "lwa-image pbcor ...")
    synth.make(55, stokes="I", dewarped=False, pbcor=True)
    qa = collect_run(synth.run, cfg=CFG)
    assert qa.get("pbcor", "55MHz").score == pytest.approx(0.5) and qa.get("pbcor", "55MHz").colour == "yellow"
    assert qa.get("pbcor", "59MHz").score == 0.0  # it ran and corrected nothing
    assert qa.get("imaging", "55MHz").status == "not run"  # no science log: not scored, not invented


def test_gather_parses_coordinates_whatever_the_text():
    from lwa_stack.gather import parse_angle_deg

    assert parse_angle_deg("10h30m00s", ra=True) == 157.5 and parse_angle_deg("10:30:00", ra=True) == 157.5
    assert parse_angle_deg("153.75", ra=True) == 153.75 and parse_angle_deg(153.75, ra=True) == 153.75
    assert parse_angle_deg("09:40:00", ra=False) == pytest.approx(9 + 2 / 3)
    assert parse_angle_deg("-05d30m00s", ra=False) == -5.5 and parse_angle_deg("+40:00:00", ra=False) == 40.0
    assert parse_angle_deg("", ra=True) is None and parse_angle_deg("banana", ra=False) is None
    assert parse_angle_deg("95.0", ra=False) is None


def test_dewarp_score_from_the_screen(synth):
    """The cross-validated residual in beams scores the dewarp; a screen worse than the identity is red."""
    synth.make(55, stokes="I", dewarped=False)  # deep I, taper, robust 0, BMAJ 2 deg
    sb = synth.run / "55MHz"
    _log(sb / "logs", "dewarp-fit", "lwa-dewarp fit ...")
    (sb / "dewarp").mkdir()
    screen = sb / "dewarp" / "screen.fits"
    fits.PrimaryHDU(np.zeros((2, 4, 4), np.float32), header=fits.Header(
        {"NANCHOR": 12, "OFFMED0": 30.0, "OFFMEDCV": 6.0})).writeto(screen)
    sc = collect_run(synth.run, cfg=CFG).get("dewarp", "55MHz")
    assert sc.inputs["R (beams)"] == pytest.approx(6.0 / 120.0) and sc.value == 1.0 and not sc.items
    with fits.open(screen, mode="update") as h:
        h[0].header["OFFMEDCV"] = 60.0  # 0.5 beam, and worse than before dewarping
        h[0].header["OFFMED0"] = 40.0
    sc = collect_run(synth.run, cfg=CFG).get("dewarp", "55MHz")
    assert sc.score == pytest.approx(0.9 * 0.2 / 0.5)
    assert sc.colour == "red" and "worsens astrometry" in sc.items[0]
    with fits.open(screen, mode="update") as h:
        h[0].header["DWSTATUS"] = "IDENTITY"  # that screen was not applied: the images stay as they were
    sc = collect_run(synth.run, cfg=CFG).get("dewarp", "55MHz")
    assert sc.value == 1.0 and not sc.items and "left undewarped" in sc.detail
    screen.unlink()
    (sb / "logs" / "dewarp-fit.log").write_text("$ lwa-dewarp fit ...\nonly 2 anchors matched (need 6)\n")
    sc = collect_run(synth.run, cfg=CFG).get("dewarp", "55MHz")
    assert sc.value == 0.5 and sc.inputs["anchors"] == "2" and "not dewarped" in sc.detail


def test_noise_plot_axes_have_no_offset_notation():
    """One subband's images sit at one frequency (57.0270 MHz): the axis must not read 1e-5+5.7027e1."""
    import matplotlib.pyplot as plt

    from lwa_stack.plots import noise_figure

    df = pd.DataFrame({"path": ["a", "b"], "subband": ["55MHz"] * 2, "freq_mhz": [57.027, 57.027],
                       "stokes": ["I", "V"], "imgcat": ["deep"] * 2, "interval": ["deep"] * 2, "robust": [0.0, 0.0],
                       "taper": [30.0, 30.0], "pbcor": [False, False], "dewarped": [False, False],
                       "rms_jy": [0.0123, 0.0101], "n_pix": [100, 100]})
    fig = noise_figure(df)
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.xaxis.get_major_formatter().get_offset() == ""
        lo, hi = ax.get_xlim()
        assert hi - lo >= 2.0  # a readable window around the one frequency
    plt.close(fig)


def test_beam_far_from_its_expectation_is_red(synth):
    """A 10-min image whose fitted beam is 3x its deep image's, and one undersampled image, are red items
    naming the image and the cause (issue 22 item 4); beams as expected leave the stage without items."""
    synth.make(55, stokes="I", dewarped=False, bmaj_deg=2.0, scale_deg=0.6)
    synth.make(55, stokes="I", imgcat="10min", interval="t0001", dewarped=False, bmaj_deg=2.0, scale_deg=0.6)
    _log(synth.run / "55MHz" / "logs", "science", "lwa-image science ...")
    sc = collect_run(synth.run, cfg=CFG).get("imaging", "55MHz")
    assert not sc.items  # (its score is low: 2 of the 17 expected images)
    wide = synth.make(55, stokes="I", imgcat="10min", interval="t0002", dewarped=False, bmaj_deg=6.0, scale_deg=0.6)
    sc = collect_run(synth.run, cfg=CFG).get("imaging", "55MHz")
    assert sc.colour == "red" and len(sc.items) == 1, sc.items
    assert any(it.startswith(wide.name) and "fitted beam 360.0'" in it and "3.00x" in it for it in sc.items)
    coarse = synth.make(55, stokes="I", imgcat="10min", interval="t0003", dewarped=False, bmaj_deg=2.0, scale_deg=1.0)
    sc = collect_run(synth.run, cfg=CFG).get("imaging", "55MHz")
    assert any(it.startswith(coarse.name) and "undersampled" in it for it in sc.items)
