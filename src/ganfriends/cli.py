"""The ``ganfriends`` command line. This is the one error funnel: a ``GanError`` becomes one line on
stderr and exit status 1; ``-v`` adds the traceback.

A command's config flags are the options that name it (``ganfriends.config.sections``): a section
lists the commands that read it, so a new option appears on exactly the commands that use it."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ganfriends import __version__
from ganfriends.children import bind_to_parent
from ganfriends.config import (
    Config,
    command_options,
    config_yaml,
    env_name,
    is_switch,
    load_config,
    redact_url,
)
from ganfriends.errors import GanError

Handler = Callable[[argparse.Namespace], int]


def _add_config_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """One flag per config option ``command`` reads; unset flags leave file/env values alone."""
    parser.add_argument(
        "--config", metavar="FILE", help="YAML config file (default: ./config.yaml if present)"
    )
    for key, f in command_options(command):
        help_text = f"{f.metadata['help']} (default: {f.default}; env {env_name(key)})"
        if is_switch(key):
            how: dict[str, Any] = {"action": "store_const", "const": True}
        else:
            how = {"metavar": key.split(".")[1].upper()}
        parser.add_argument(
            f.metadata["flag"], dest=key, default=argparse.SUPPRESS, help=help_text, **how
        )


def _config_from(args: argparse.Namespace) -> Config:
    overrides = {k: v for k, v in vars(args).items() if "." in k}
    url = overrides.get("database.url")
    if url and redact_url(url) != url:
        print(
            "warning: this --db URL holds a password, which any user of this machine can read "
            "(ps, shell history): pass it in GANFRIENDS_DATABASE_URL or config.yaml instead",
            file=sys.stderr,
        )
    config = load_config(args.config, overrides=overrides)
    for note in dict.fromkeys(config.renamed):  # old names keep working: say the new ones once
        print(f"warning: {note}", file=sys.stderr)
    return config


def _command(
    commands: Any,
    verbose: argparse.ArgumentParser,
    name: str,
    help: str,
    func: Handler,
    description: str | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """The subcommand ``name`` with -v, the flags of the config options it reads, and its handler
    (described by the handler's docstring unless ``description`` says otherwise)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        parents=[verbose],
        help=help,
        description=description or func.__doc__,
        **kwargs,
    )
    if command_options(name):
        _add_config_flags(parser, name)
    parser.set_defaults(func=func)
    return parser


def cmd_config(args: argparse.Namespace) -> int:
    """Print the configuration the commands would read here (config file < environment), one
    section per block, each headed by the commands that read it; secrets masked. A bad value or
    an unknown option is reported as any command would."""
    print(config_yaml(_config_from(args)), end="")
    return 0


def cmd_train_local(args: argparse.Namespace) -> int:
    """Train on this machine."""
    from ganfriends.training.local import train_local

    result = train_local(_config_from(args), resume=args.resume)
    return 130 if result.stopped_early else 0


def _worker(args: argparse.Namespace) -> int:
    from ganfriends.classroom import commands as classroom

    config = _config_from(args)
    if args.gpus is None:
        return classroom.worker(config, max_units=args.max_units)
    import socket

    import torch

    from ganfriends.classroom.gpu_workers import child_commands, parse_gpus, run_workers

    gpus = parse_gpus(args.gpus, torch.cuda.device_count())
    name = config.worker.name or socket.gethostname()
    commands = child_commands(args.raw_argv, gpus, name)
    return run_workers(commands, [f"gpu{g}" for g in gpus])


def _students(args: argparse.Namespace) -> int:
    from ganfriends.classroom import commands as classroom

    if args.action in ("add", "revoke", "pardon") and not args.name:
        raise GanError(f"students {args.action} needs the student's name")
    return classroom.students(
        _config_from(args),
        action=args.action,
        name=args.name,
        max_connections=args.max_connections,
        output=args.output,
    )


def cmd_slurm(args: argparse.Namespace) -> int:
    """Write an sbatch script that runs train-local with torchrun on SLURM nodes (a c10d
    rendezvous on the first node); --submit also submits it, --no-submit only prints it."""
    from pathlib import Path

    from ganfriends.cluster.slurm import (
        check_fields,
        check_launcher,
        check_train_args,
        render_script,
        submit,
    )

    rest = list(args.train)
    rest = rest[1:] if rest[:1] == ["--"] else rest
    if rest[:1] != ["train-local"]:
        raise GanError(
            "say what the job trains: ganfriends slurm [options] -- train-local [its options]"
        )
    # Check the train-local command here, not after a wait in the queue.
    train = build_parser().parse_args(rest)
    config = _config_from(args)
    check_fields(config.slurm)  # before anything else is checked or written
    if train.resume is None:
        check_train_args(rest[1:], _config_from(train).training.batch_size, config.slurm)
    if args.submit:
        check_launcher(config.slurm)
    script = render_script(config.slurm, rest[1:])
    if args.no_submit:
        print(script, end="")
        return 0
    path = Path(config.slurm.script)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script, encoding="utf-8")
    if args.submit:
        print(f"submitted {path} as job {submit(path)}")
    else:
        print(f"wrote {path}; submit it with: sbatch {path}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a class run's mode (sync, federated, md-gan) in this process, with its rules."""
    from ganfriends.training.simulate import simulate

    result = simulate(_config_from(args))
    return 130 if result.stopped_early else 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Write a grid of generated images."""
    from ganfriends.generate import generate_grid

    if args.num < 1:
        raise GanError(f"--num must be at least 1, got {args.num}")
    if args.hf_repo is not None:
        from ganfriends.generate import generate_grid_from_hub
        from ganfriends.hub.download import target_for

        # Token and endpoint: config.yaml / GANFRIENDS_HUGGINGFACE_*, else HF_TOKEN / HF_ENDPOINT.
        target = target_for(args.hf_repo, load_config(args.config).huggingface)
        path = generate_grid_from_hub(
            target, args.out, num=args.num, seed=args.seed, device=args.device
        )
        print(f"wrote {args.num} images from {target.describe()} to {path}")
        return 0
    path = generate_grid(
        args.checkpoint, args.out, num=args.num, seed=args.seed, device=args.device
    )
    print(f"wrote {args.num} images to {path}")
    return 0


def cmd_download_celeba(args: argparse.Namespace) -> int:
    """Fetch CelebA's aligned zip (default: the seed project's Hugging Face mirror, checked
    against the official archive's MD5; an interrupted download resumes), else say how to get
    it by hand."""
    from pathlib import Path

    from ganfriends.data import default_data_dir, download_celeba

    dest = Path(args.dest) if args.dest else default_data_dir() / "celeba"
    path = download_celeba(dest, url=args.url)
    print(
        f"CelebA is ready at {path}; train with: "
        f"ganfriends train-local --dataset celeba --dataset-path {path}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render --help in the README)."""
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    parser = argparse.ArgumentParser(
        prog="ganfriends",
        description="Train one GAN together: locally, or as a class through PostgreSQL.",
        parents=[verbose],
    )
    parser.add_argument("--version", action="version", version=f"ganfriends {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = _command(commands, verbose, "train-local", "train on this machine", cmd_train_local)
    train.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")

    gen = _command(
        commands, verbose, "generate",
        "draw images from a checkpoint or a Hugging Face repository", cmd_generate,
    )  # fmt: skip
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint", metavar="PATH", help="a train-local or coordinator checkpoint"
    )
    source.add_argument(
        "--hf-repo",
        metavar="REPO",
        help="a Hugging Face repository a ganfriends run pushed to (owner/name; "
        "HF_TOKEN and HF_ENDPOINT apply)",
    )
    gen.add_argument(
        "--config", metavar="FILE", help="YAML config file for the huggingface section"
    )
    gen.add_argument("--num", type=int, default=64, help="number of images (default: 64)")
    gen.add_argument("--out", default="faces.png", help="output PNG (default: faces.png)")
    gen.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    gen.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))

    from ganfriends.evaluation.command import add_eval_arguments, run_eval

    evaluate = _command(
        commands, verbose, "eval", "FID, KID and precision/recall of a checkpoint", run_eval
    )
    add_eval_arguments(evaluate)

    slurm = _command(
        commands, verbose, "slurm", "an sbatch script for train-local under torchrun (SLURM "
        "clusters)", cmd_slurm, usage="ganfriends slurm [options] -- train-local [train-local "
        "options]",
    )  # fmt: skip
    submit = slurm.add_mutually_exclusive_group()
    submit.add_argument("--submit", action="store_true", help="also submit it with sbatch")
    submit.add_argument(
        "--no-submit", action="store_true", help="preview: print the script, write nothing"
    )
    slurm.add_argument(
        "train", nargs=argparse.REMAINDER, help="-- train-local and its options, as on one machine"
    )

    _command(
        commands, verbose, "simulate",
        "a class run's mode (sync, federated, md-gan) in one process, for research", cmd_simulate,
    )  # fmt: skip

    celeba = _command(
        commands, verbose, "download-celeba",
        "fetch CelebA's aligned zip from the default mirror, checked and resumable",
        cmd_download_celeba,
    )  # fmt: skip
    celeba.add_argument(
        "--dest", metavar="DIR", help="where to put it (default: <data dir>/celeba)"
    )
    celeba.add_argument(
        "--url",
        help="another source of img_align_celeba.zip (default: $GANFRIENDS_CELEBA_URL, else "
        "the seed project's Hugging Face mirror)",
    )
    settings = _command(
        commands, verbose, "config", "print the configuration the commands would read here",
        cmd_config,
    )  # fmt: skip
    settings.add_argument(
        "--config", metavar="FILE", help="YAML config file (default: ./config.yaml if present)"
    )
    _add_class_commands(commands, verbose)
    return parser


def _db(args: argparse.Namespace) -> int:
    from ganfriends.classroom import commands as classroom

    where = ("data_dir", "listen", "port", "tls_cert", "tls_key", "plaintext")
    return classroom.db_command(args.action, **{name: getattr(args, name) for name in where})


def _add_class_commands(commands: Any, verbose: argparse.ArgumentParser) -> None:
    """init-db, db, students, coordinator, worker, status, dashboard and demo."""
    from ganfriends.classroom import commands as classroom

    init = _command(
        commands, verbose, "init-db", "create or migrate the database schema",
        lambda a: classroom.init_db(_config_from(a), do_reset=a.reset, yes=a.yes),
        "Create or migrate the schema (the embedded PostgreSQL when no --db is given).",
    )  # fmt: skip
    init.add_argument("--reset", action="store_true", help="delete everything first (asks)")
    init.add_argument("--yes", action="store_true", help="do not ask before --reset")

    db = _command(
        commands, verbose, "db", "the embedded PostgreSQL: start, stop, url, status", _db,
        "Host the class database on this machine (no server to install).",
    )  # fmt: skip
    db.add_argument("action", choices=("start", "stop", "url", "status"))
    db.add_argument("--data-dir", help="cluster directory (default: $GANFRIENDS_PG_DIR or ours)")
    db.add_argument(
        "--listen",
        metavar="ADDR",
        help="also accept TCP connections on ADDR (e.g. 0.0.0.0): TLS and a password",
    )
    db.add_argument("--port", type=int, help="TCP port with --listen (default: a free one)")
    db.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate served with --listen (default: a generated self-signed one)",
    )
    db.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    db.add_argument(
        "--insecure-plaintext",
        dest="plaintext",
        action="store_true",
        help="with --listen: no TLS (anyone on the network can read and hijack sessions)",
    )

    pupils = _command(
        commands, verbose, "students", "per-student database logins: add, list, revoke, pardon",
        _students, classroom.students.__doc__,
    )  # fmt: skip
    pupils.add_argument("action", choices=("add", "list", "revoke", "pardon"))
    pupils.add_argument("name", nargs="?", help="the student (add, revoke, pardon): a-z, 0-9, _")
    pupils.add_argument(
        "--max-connections",
        type=int,
        help="the student's connections (default: 5: a worker and a `status` beside it)",
    )
    pupils.add_argument("--output", metavar="FILE", help="also write the student's URL to FILE")

    _command(
        commands, verbose, "coordinator", "run (or resume) the class run",
        lambda a: classroom.coordinator(_config_from(a)), classroom.coordinator.__doc__,
    )  # fmt: skip

    work = _command(
        commands, verbose, "worker", "contribute to the class run", _worker,
        classroom.worker.__doc__,
    )  # fmt: skip
    work.add_argument("--max-units", type=int, help="exit after this many units")
    work.add_argument(
        "--gpus",
        metavar="all|0,1",
        help="one worker process per GPU, named NAME-gpu0, NAME-gpu1, ... (Ctrl+C stops them all)",
    )

    stat = _command(
        commands, verbose, "status", "where the class run stands",
        lambda a: classroom.status(_config_from(a), as_json=a.json), classroom.status.__doc__,
    )  # fmt: skip
    stat.add_argument("--json", action="store_true", help="machine-readable output")

    dash = _command(
        commands, verbose, "dashboard", "live class dashboard in the browser (read-only)",
        lambda a: classroom.dashboard(_config_from(a), port=a.port, address=a.address),
        "Serve the class dashboard (extra: pip install 'ganfriends[dashboard]').",
    )  # fmt: skip
    dash.add_argument("--port", type=int, default=8501, help="HTTP port (default: 8501)")
    dash.add_argument(
        "--address", default="127.0.0.1", help="listen address (0.0.0.0 for the whole class)"
    )

    demo = _command(
        commands, verbose, "demo", "a coordinator and workers on this machine", classroom.demo
    )
    demo.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    demo.add_argument(
        "--workdir", default="demo", help="database, logs and samples (default: demo)"
    )
    demo.add_argument(
        "--max-iterations", type=int, help="stop after N updates (default: the 2 epochs)"
    )
    demo.add_argument("--seed", type=int, default=0, help="run seed (default: 0)")
    demo.add_argument("--epochs", type=int, default=2, help="epochs to train (default: 2)")
    demo.add_argument(
        "--dashboard", action="store_true", help="also start the dashboard and print its address"
    )
    demo.add_argument("--dashboard-port", type=int, default=8501, help="(default: 8501)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    # Started by a ganfriends command (demo, dashboard)? Never outlive it, even a SIGKILLed one.
    bind_to_parent()
    # The pool reports each connection it drops after a server restart; our commands already say
    # "database unreachable, retrying" in one line, so keep its warnings out of the console.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    args.raw_argv = list(sys.argv[1:] if argv is None else argv)  # for commands that re-launch
    verbose = getattr(args, "verbose", False)
    handler: Handler = args.func
    try:
        return handler(args)
    except GanError as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)",
            file=sys.stderr,
        )
        return 1
