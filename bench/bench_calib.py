"""Benchmark lwa-calib against plain CASA, side by side on the same data.

Builds its own data in a temporary folder (lwa-sim: 128 antennas, 32 channels, two integrations of
one bright calibrator with gains), then times

1. the sky-model step of `solve`: `lwa_calib.write_model_data` (beam-weighted direct Fourier
   transform in numpy, per integration) vs CASA ``ft`` of an equivalent component list (one
   flux per component, the alternative `lwa_calib.skymodel` explains it does not use);
2. `lwa_calib.apply_tables` on one MS (pre-flight checks, copy, applycal, provenance) vs the same
   work bare: copying the MS (`shutil.copytree`) and ``casatasks.applycal`` on the copy (the tool
   never touches its input, so a copy is part of the work; an applycal in place on a copy made
   beforehand left it out).

Times each pair interleaved, best of --repeat, and prints
`bench calib-model-...: ratio X goal <= 3 held|short` and `bench calib-apply-...: ratio X goal <= 2 ...`.

    .venv/bin/python bench/bench_calib.py [--antennas 128] [--channels 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from lwa_common.testing import bench_line, best_of

GOAL_MODEL = 3.0
GOAL_APPLY = 2.0
SOURCE = {"name": "cal", "ra": 151.0, "dec": 37.0, "flux_jy": 5000.0, "ref_freq_mhz": 55.0,
          "spectral_index": -0.7, "v_frac": 0.2}


def build(folder: Path, n_ant: int, n_chan: int, n_int: int) -> Path:
    from astropy.time import Time

    from lwa_common.testing import system_cfg_path
    from lwa_sim import ObserveSettings, observe, parse_spec

    spec = parse_spec({"sources": [SOURCE], "noise": {"sigma_jy": 1.0},
                       "gains": {"amplitude_rms": 0.1, "phase_rms_deg": 30, "xy_phase_deg": 40, "seed": 5}})
    settings = ObserveSettings(start=Time("2024-12-20T12:00:00"), n_integrations=n_int, subbands_mhz=(55,),
                               n_channels=n_chan, n_antennas=n_ant, system_cfg=system_cfg_path(), seed=0)
    observe(spec, settings, folder / "sim")
    sky = folder / "sky.json"
    sky.write_text(json.dumps([{"name": "cal", "ra": SOURCE["ra"], "dec": SOURCE["dec"], "I": SOURCE["flux_jy"],
                                "V": SOURCE["flux_jy"] * SOURCE["v_frac"], "freq": 55e6,
                                "index": [SOURCE["spectral_index"]]}]))
    return folder / "sim"


def component_list(path: Path, tools) -> Path:
    cl = tools.componentlist()
    cl.addcomponent(dir="J2000 151.0deg 37.0deg", flux=[5000.0, 0.0, 0.0, 1000.0], fluxunit="Jy", freq="55MHz",
                    shape="point", spectrumtype="spectral index", index=-0.7)
    cl.rename(str(path))
    cl.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--antennas", type=int, default=128)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--integrations", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from lwa_calib import apply_tables, gains_to_tables, load_components, read_true_gains, write_model_data
    from lwa_calib.casa_env import casa_log, casatools, run_task
    from lwa_calib.solve import concat_ms

    with tempfile.TemporaryDirectory(prefix="bench_calib_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        sim = build(tmp, args.antennas, args.channels, args.integrations)
        inputs = sorted(sim.glob("*.ms"))
        print(f"built {len(inputs)} MS ({args.antennas} antennas, {args.channels} channels) "
              f"in {time.perf_counter() - t0:.1f} s")
        with casa_log(tmp / "casa.log"):
            ms = concat_ms(inputs, tmp / "cat.ms")
            components = load_components(tmp / "sky.json")
            cl = component_list(tmp / "cal.cl", casatools())
            write_model_data(ms, components=components)  # warm-up: the beam, IERS tables, column creation
            best = best_of({"ours": lambda: write_model_data(ms, components=components),
                            "casa": lambda: run_task("ft", vis=str(ms), complist=str(cl), usescratch=True)},
                           args.repeat)
            ours, casa = best["ours"], best["casa"]
            print(f"model  lwa_calib.write_model_data {ours:7.2f} s | CASA ft(componentlist) {casa:7.2f} s")
            model_ratio = ours / casa

            gains, _, _ = read_true_gains(sim / "true_gains_55MHz.h5")
            bp, xy = gains_to_tables(gains=gains, template_ms=inputs[0], bp_table=tmp / "t.B",
                                     xy_table=tmp / "t.Xf", xy_phase_deg=40.0)
            counter = iter(range(1000))

            def ours_apply() -> None:
                apply_tables([inputs[0]], bp_table=bp, xy_table=xy, outdir=tmp / f"out{next(counter)}")

            def bare_apply() -> None:  # the same work: a calibrated copy, the input untouched
                copy = tmp / f"bare{next(counter)}.ms"
                shutil.copytree(inputs[0], copy)
                run_task("applycal", vis=str(copy), gaintable=[str(bp), str(xy)],
                         interp=["nearest,nearest"] * 2, calwt=[False, False], parang=False, flagbackup=False)

            best = best_of({"ours": ours_apply, "casa": bare_apply}, args.repeat)
            ours, casa = best["ours"], best["casa"]
            print(f"apply  lwa_calib.apply_tables     {ours:7.2f} s | copy + bare applycal    {casa:7.2f} s")
        size = f"{args.antennas}ant-{args.channels}ch"
        bench_line(f"calib-model-{size}", model_ratio, GOAL_MODEL)
        bench_line(f"calib-apply-{size}", ours / casa, GOAL_APPLY)


if __name__ == "__main__":
    main()
