"""The shared CLI vocabulary of every lwa-pipe tool (click).

Every tool is a click group whose subcommands take positional inputs, `-o/--output`,
`--overwrite`, `--config`, `-v`, `--log-file`. `run_main` turns an `LwaError` (or an unreadable
input) into one line on stderr and exit status 1; click's usage errors keep exit status 2.
Logs go to stderr (and the log file); stdout carries only machine-readable results.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lwa_common.config import Config, config_to_dict, default_text, load_config
from lwa_common.errors import LwaError
from lwa_common.io import forget_created, remove_created
from lwa_common.provenance import command_line, git_hash, tool_version

__all__ = [
    "common_options",
    "output_option",
    "overwrite_option",
    "config_option",
    "json_option",
    "section_option",
    "renamed",
    "setup_logging",
    "run_main",
    "version_string",
    "emit",
    "ExistingPath",
    "NewPath",
]

log = logging.getLogger(__name__)

ExistingPath = click.Path(exists=True, path_type=Path)
NewPath = click.Path(path_type=Path)

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # ISO 8601, local time with its offset


class _HeldWarnings(logging.Handler):
    """At the default verbosity, stderr warnings wait for the end of the run.

    A run that succeeds prints them (`show`); a run that fails prints only its one error line, which
    quotes the last warning it held back (`drop`): they are in the log file and shown with `-v`.
    """

    def __init__(self, target: logging.Handler) -> None:
        super().__init__(target.level)
        self.target, self.records = target, []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def show(self) -> None:
        for record in self.records:
            self.target.handle(record)
        self.records.clear()

    def drop(self, error: str = "") -> str:
        """Forget the held warnings; a note on them for the `error` line ('' when none)."""
        if not self.records:
            return ""
        messages = [" ".join(r.getMessage().split()) for r in self.records]
        self.records = []
        news = [m for m in messages if not any(part in error for part in m.split(": ")[-1:])]
        if not news:  # the error says it already
            return f" ({len(messages)} warning{'s' if len(messages) > 1 else ''} before it: -v shows them)"
        more = f"; {len(messages) - 1} more: -v shows them" if len(messages) > 1 else ""
        return f" (last warning: {news[-1][:300]}{more})"


_held: list[_HeldWarnings] = []  # the holder of the current run, if any


def setup_logging(verbose: int = 0, log_file: Path | None = None) -> None:
    """Handlers for a CLI run: stderr always, and `log_file` when given (appended)."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    stream.setLevel(level)
    _held.clear()
    if verbose == 0:
        _held.append(_HeldWarnings(stream))
    root.addHandler(_held[0] if _held else stream)
    root.setLevel(logging.DEBUG if log_file else level)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
        fh.setLevel(logging.INFO if verbose < 2 else logging.DEBUG)
        root.addHandler(fh)
    for noisy in ("matplotlib", "PIL", "numba", "h5py", "asyncio", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _route_library_warnings()


def _route_library_warnings() -> None:
    """Python warnings and astropy's own log go through our handlers (held back, formatted, in the log file).

    astropy prints its warnings with a handler of its own (`WARNING: ... [astropy.io.fits.file]`),
    which would bypass the one-line contract of a failed run.
    """
    from astropy import log as astropy_log
    from astropy.logger import LoggingError

    if astropy_log.warnings_logging_enabled():
        with contextlib.suppress(LoggingError):  # showwarning already taken over (pytest, a second run)
            astropy_log.disable_warnings_logging()
    for handler in list(astropy_log.handlers):
        astropy_log.removeHandler(handler)
    astropy_log.propagate = True
    logging.captureWarnings(True)


def _configure(ctx: click.Context, verbose: int, log_file: Path | None, config: Path | None) -> Config:
    setup_logging(verbose, log_file)
    cfg = load_config(config)
    ctx.ensure_object(dict)
    ctx.obj["config"] = cfg
    log.info("command: %s", command_line())
    if config:
        log.info("config file %s resolved to %s", config, json.dumps(config_to_dict(cfg), default=str))
    return cfg


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`-v`, `--log-file`, `--config` on a subcommand; passes `cfg` (the resolved Config)."""

    @click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
    @click.option("--log-file", type=NewPath, default=None, help="Also append the log to this file.")
    @click.option("--config", "config_file", type=ExistingPath, default=None,
                  help="TOML file overriding pipeline defaults (unknown keys are errors).")
    @click.pass_context
    @functools.wraps(func)
    def wrapper(ctx: click.Context, *args: Any, verbose: int, log_file: Path | None,
                config_file: Path | None, **kwargs: Any) -> Any:
        cfg = _configure(ctx, verbose, log_file, config_file)
        t0 = time.perf_counter()
        result = func(*args, cfg=cfg, **kwargs)
        log.info("%s finished in %.1f s", ctx.command_path, time.perf_counter() - t0)
        return result

    return wrapper


def output_option(required: bool = True, help: str = "Output path.", **kw: Any) -> Callable[..., Any]:
    return click.option("-o", "--output", type=NewPath, required=required, help=help, **kw)


overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
config_option = click.option("--config", "config_file", type=ExistingPath, default=None,
                             help="TOML file overriding pipeline defaults.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")


def section_option(section: str, key: str, *decls: str, help: str, **kw: Any) -> Callable[..., Any]:
    """An option overriding `config.<section>.<key>`: default None (not given), help ends with the default.

    `decls` default to `--key-with-dashes` (a bool field: `--key/--no-key`); the type to the field's.
    The command combines the given values with `lwa_common.config.section_with`.
    """
    value = getattr(getattr(Config(), section), key)
    flag = key.replace("_", "-")
    if not decls:
        decls = (f"--{flag}/--no-{flag}",) if isinstance(value, bool) else (f"--{flag}",)
    if "type" not in kw and not isinstance(value, (bool, tuple)):
        kw["type"] = type(value)
    return click.option(*decls, default=None, help=f"{help}  [{default_text(section, key)}]", **kw)


class RenamedOption(click.Option):
    """An option whose earlier spellings still parse but are hidden (help, errors, docs/options.md)."""

    def __init__(self, param_decls: list[str], *, old_names: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__([*param_decls, *old_names], **kw)
        self.old_names = tuple(n for name in old_names for n in name.split("/"))

    def _shown(self, method: Callable[..., Any], ctx: click.Context) -> Any:
        opts, secondary = self.opts, self.secondary_opts
        self.opts = [o for o in opts if o not in self.old_names]
        self.secondary_opts = [o for o in secondary if o not in self.old_names]
        try:
            return method(ctx)
        finally:
            self.opts, self.secondary_opts = opts, secondary

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        return self._shown(super().get_help_record, ctx)

    def get_error_hint(self, ctx: click.Context) -> str:
        return self._shown(super().get_error_hint, ctx)


def renamed(*old_names: str) -> dict[str, Any]:
    """Keyword arguments of `click.option` keeping `old_names` as hidden aliases of a renamed option.

    `click.option("--plots/--no-plots", "png", **renamed("--png/--no-png"), ...)`: one name per
    meaning across the suite (docs/options.md lists the rules and every old spelling still accepted).
    """
    return {"cls": RenamedOption, "old_names": old_names}


def emit(value: Any, *, as_json: bool = False) -> None:
    """Machine-readable result on stdout: JSON, or one path per line."""
    if as_json:
        click.echo(json.dumps(value, indent=1, default=str))
    elif isinstance(value, (list, tuple)):
        for item in value:
            click.echo(str(item))
    elif isinstance(value, dict):
        for item in value.get("outputs", []):
            click.echo(str(item))
    elif value is not None:
        click.echo(str(value))


def version_string(distribution: str) -> str:
    """`lwa-flag 0.2.0 (git 1a2b3c4)`: the installed version, plus the git hash from a checkout."""
    ghash = git_hash()
    return f"{distribution} {tool_version(distribution)}{f' (git {ghash})' if ghash else ''}"


def _add_version_option(group: click.Command) -> None:
    """`--version` on a tool's group, named after its package (lwa_flag -> lwa-flag)."""
    if any("--version" in p.opts for p in group.params):
        return
    module = getattr(group.callback, "__module__", None) or "lwa_common"
    distribution = module.split(".")[0].replace("_", "-")

    def show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        # the version and git hash are looked up only when asked (`git rev-parse` is a process)
        if value and not ctx.resilient_parsing:
            click.echo(version_string(distribution))
            ctx.exit()

    click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=show,
                 help="Print the version and exit.")(group)


class Terminated(BaseException):
    """SIGTERM (Slurm's scancel, a job time limit) as an exception, so cleanup runs on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


CHILD_GRACE_S = 5.0  # seconds a child process has to end on SIGTERM before it is killed


def _end_children() -> None:
    """SIGTERM to every child process of this one (wsclean, aoflagger, DP3, ffmpeg), SIGKILL after
    `CHILD_GRACE_S` to those still running. A tool waiting on its child from a worker thread (an
    executor) could otherwise not unwind before the child finished on its own."""
    me = str(os.getpid())
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[1] == me and fields[0] != "Z":
                children.append(int(stat.parent.name))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + CHILD_GRACE_S
        while children and time.monotonic() < deadline:
            children = [pid for pid in children if _running(pid)]
            time.sleep(0.05)
        if not children:
            return


def _running(pid: int) -> bool:
    """`pid` is alive and not a zombie (a zombie child is reaped by whoever waits on it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _raise_terminated(signum: int, _frame: Any) -> None:
    _end_children()
    raise Terminated(signum)


def _raise_interrupted(_signum: int, _frame: Any) -> None:
    _end_children()
    raise KeyboardInterrupt


def run_main(group: click.Group, argv: list[str] | None = None) -> None:
    """Entry point body: run `group`; every failure becomes one stderr line and a non-zero exit.

    `LwaError` and unreadable/unwritable paths (OSError) exit 1 with `prog: error: ...`; click's usage
    errors exit 2; SIGINT exits 130 and SIGTERM 143. On an interrupt the exception unwinds the stack,
    so `subprocess.run` kills the external tool it waits on (wsclean, aoflagger, DP3, ffmpeg) and
    `atomic_path` removes its partial output. An unexpected exception (a bug) is reported on one line
    too; its traceback goes to the log at DEBUG (`-vv` or `--log-file`).
    """
    prog = Path(sys.argv[0]).name if sys.argv else group.name
    _add_version_option(group)
    logger = logging.getLogger(prog)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
        signal.signal(signal.SIGINT, _raise_interrupted)
    forget_created()
    try:
        _run_group(group, argv, prog, logger)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            remove_created()  # a failed or interrupted run leaves no output folder behind
        if _held and exit_.code not in (0, None):
            _held[0].drop()  # the error (or interrupt) line says it all; the warnings are in --log-file
        elif _held:
            _held[0].show()
        raise


# modules of the lwa-common[ms] extra (measurement sets, beam models), by the distribution that has them
_MS_EXTRA = {"casacore": "python-casacore", "h5py": "h5py"}


def _held_note(error: str = "") -> str:
    """Drop the warnings held back from stderr; a note on them for the `error` line."""
    return _held[0].drop(error) if _held else ""


def _run_group(group: click.Group, argv: list[str] | None, prog: str, logger: logging.Logger) -> None:
    """`group.main`, with every failure turned into its message and exit status (`run_main`)."""
    try:
        group.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    except Terminated as err:
        click.echo(f"{prog}: terminated by signal {err.signum}", err=True)
        sys.exit(128 + err.signum)
    except LwaError as err:
        logger.debug("failure", exc_info=True)
        click.echo(f"{prog}: error: {err}{_held_note(str(err))}", err=True)
        sys.exit(1)
    except OSError as err:
        logger.debug("failure", exc_info=True)
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        click.echo(f"{prog}: error: cannot use{where}: {err.strerror or err}{_held_note(str(err))}", err=True)
        sys.exit(1)
    except Exception as err:  # a bug: still one line for the user, the traceback at DEBUG
        logger.debug("unexpected failure", exc_info=True)
        _held_note()
        missing = (err.name or "").split(".")[0] if isinstance(err, ModuleNotFoundError) else ""
        if missing in _MS_EXTRA:  # an MS command where lwa-common was installed without its [ms] extra
            click.echo(f"{prog}: error: this command needs {_MS_EXTRA[missing]}, which is not installed: "
                       "pip install 'lwa-common[ms]'", err=True)
            sys.exit(1)
        click.echo(f"{prog}: error: unexpected {type(err).__name__}: {err} (rerun with -vv for the traceback)",
                   err=True)
        sys.exit(1)
    sys.exit(0)
