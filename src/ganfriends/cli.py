"""The ``ganfriends`` command line. This is the one error funnel: a ``GanError`` becomes one line on
stderr and exit status 1; ``-v`` adds the traceback."""

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
    env_name,
    flag_options,
    is_switch,
    load_config,
    option_help,
    redact_url,
)
from ganfriends.errors import GanError
from ganfriends.rules.registry import mode_names, mode_settings

Handler = Callable[[argparse.Namespace], int]


# Options that only a class run uses: not flags of train-local.
CLASS_RUN_OPTIONS = (
    "training.images_per_work_unit",
    "training.workunits_per_update",
    "training.micro_batch",
    "training.transfer_dtype",
    "training.work_unit_timeout",
)


def _add_config_flags(
    parser: argparse.ArgumentParser, *sections: str, exclude: tuple[str, ...] = ()
) -> None:
    """One flag per config option of these sections; unset flags leave file/env values alone."""
    parser.add_argument(
        "--config", metavar="FILE", help="YAML config file (default: ./config.yaml if present)"
    )
    for key, f in flag_options(*sections, exclude=exclude):
        help_text = f"{option_help(f)} (default: {f.default}; env {env_name(key)})"
        if is_switch(key):
            parser.add_argument(
                f.metadata["flag"],
                dest=key,
                action="store_const",
                const=True,
                default=argparse.SUPPRESS,
                help=help_text,
            )
            continue
        parser.add_argument(
            f.metadata["flag"],
            dest=key,
            default=argparse.SUPPRESS,
            metavar=key.split(".")[1].upper(),
            help=help_text,
        )


def _config_from(args: argparse.Namespace) -> Any:
    overrides = {k: v for k, v in vars(args).items() if "." in k}
    url = overrides.get("database.url")
    if url and redact_url(url) != url:
        print(
            "warning: this --db URL holds a password, which any user of this machine can read "
            "(ps, shell history): pass it in GANFRIENDS_DATABASE_URL or config.yaml instead",
            file=sys.stderr,
        )
    return load_config(args.config, overrides=overrides)


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
    """Run a class run's mode (--mode) in this process, with the class run's rules."""
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

    train = commands.add_parser(
        "train-local",
        parents=[verbose],
        help="train on this machine",
        description=cmd_train_local.__doc__,
    )
    _add_config_flags(train, "training", "data", "local", "tracking", exclude=CLASS_RUN_OPTIONS)
    train.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")
    train.set_defaults(func=cmd_train_local)

    gen = commands.add_parser(
        "generate",
        parents=[verbose],
        help="draw images from a checkpoint or a Hugging Face repository",
        description=cmd_generate.__doc__,
    )
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
    gen.set_defaults(func=cmd_generate)

    from ganfriends.evaluation.command import add_eval_arguments, run_eval

    evaluate = commands.add_parser(
        "eval",
        parents=[verbose],
        help="FID, KID and precision/recall of a checkpoint",
        description=run_eval.__doc__,
    )
    add_eval_arguments(evaluate)
    evaluate.set_defaults(func=run_eval)

    slurm = commands.add_parser(
        "slurm",
        parents=[verbose],
        help="an sbatch script for train-local under torchrun (SLURM clusters)",
        description=cmd_slurm.__doc__,
        usage="ganfriends slurm [options] -- train-local [train-local options]",
    )
    _add_config_flags(slurm, "slurm")
    submit = slurm.add_mutually_exclusive_group()
    submit.add_argument("--submit", action="store_true", help="also submit it with sbatch")
    submit.add_argument(
        "--no-submit", action="store_true", help="preview: print the script, write nothing"
    )
    slurm.add_argument(
        "train", nargs=argparse.REMAINDER, help="-- train-local and its options, as on one machine"
    )
    slurm.set_defaults(func=cmd_slurm)

    sim = commands.add_parser(
        "simulate",
        parents=[verbose],
        help=f"a class run's mode ({', '.join(mode_names())}) in one process, for research",
        description=cmd_simulate.__doc__,
    )
    _add_config_flags(sim, *SIMULATE_OPTIONS, *mode_settings(), exclude=SIMULATE_EXCLUDED)
    sim.set_defaults(func=cmd_simulate)

    celeba = commands.add_parser(
        "download-celeba",
        parents=[verbose],
        help="fetch CelebA's aligned zip from the default mirror, checked and resumable",
        description=cmd_download_celeba.__doc__,
    )
    celeba.add_argument(
        "--dest", metavar="DIR", help="where to put it (default: <data dir>/celeba)"
    )
    celeba.add_argument(
        "--url",
        help="another source of img_align_celeba.zip (default: $GANFRIENDS_CELEBA_URL, else "
        "the seed project's Hugging Face mirror)",
    )
    celeba.set_defaults(func=cmd_download_celeba)
    _add_class_commands(commands, verbose)
    return parser


# simulate: a mode's settings as the coordinator takes them, train-local's outputs and device.
SIMULATE_OPTIONS = (
    "training",
    "data",
    "coordinator.mode",
    "coordinator.sample_interval",
    "coordinator.max_iterations",
    "coordinator.clip_factor",
)  # and every mode's own settings (rules.registry)
SIMULATE_EXCLUDED = (
    "training.batch_size",  # --batch-size is the federated B (sync uses --micro-batch)
    "training.max_steps",
    "training.sample_interval",  # per versions: coordinator.sample_interval
    "training.checkpoint_interval",
    "training.work_unit_timeout",
    "federated.round_timeout",  # nothing is late in one process
    "data.num_workers",
)

# Coordinator flags: the run's schedule and model, its data, its outputs.
COORDINATOR_OPTIONS = (
    "database.url",
    "tracking",
    "training",
    "data",
    "coordinator",
)  # and every mode's own settings (rules.registry)
COORDINATOR_EXCLUDED = (
    "training.device",  # the coordinator's Adam step runs on the CPU
    "training.eval_interval",  # the coordinator's own counts updates (coordinator.eval_interval)
    "training.batch_size",
    "training.max_steps",
    "training.sample_interval",
    "training.checkpoint_interval",
    "training.output_dir",
    "data.num_workers",
)
WORKER_OPTIONS = (
    "database.url",
    "worker.name",
    "worker.stop_grace",
    "worker.units_per_claim",
    "training.device",
    "data.dataset_path",
    "data.data_dir",
)


def _add_class_commands(commands: Any, verbose: argparse.ArgumentParser) -> None:
    """init-db, db, coordinator, worker, status and demo."""
    from ganfriends.classroom import commands as classroom

    init = commands.add_parser(
        "init-db",
        parents=[verbose],
        help="create or migrate the database schema",
        description="Create or migrate the schema (the embedded PostgreSQL when no --db is given).",
    )
    _add_config_flags(init, "database.url")
    init.add_argument("--reset", action="store_true", help="delete everything first (asks)")
    init.add_argument("--yes", action="store_true", help="do not ask before --reset")
    init.set_defaults(
        func=lambda a: classroom.init_db(_config_from(a), do_reset=a.reset, yes=a.yes)
    )

    db = commands.add_parser(
        "db",
        parents=[verbose],
        help="the embedded PostgreSQL: start, stop, url, status",
        description="Host the class database on this machine (no server to install).",
    )
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
        action="store_true",
        help="with --listen: no TLS (anyone on the network can read and hijack sessions)",
    )
    db.set_defaults(
        func=lambda a: classroom.db_command(
            a.action,
            data_dir=a.data_dir,
            listen=a.listen,
            port=a.port,
            tls_cert=a.tls_cert,
            tls_key=a.tls_key,
            plaintext=a.insecure_plaintext,
        )
    )

    pupils = commands.add_parser(
        "students",
        parents=[verbose],
        help="per-student database logins: add, list, revoke, pardon",
        description=classroom.students.__doc__,
    )
    pupils.add_argument("action", choices=("add", "list", "revoke", "pardon"))
    pupils.add_argument("name", nargs="?", help="the student (add, revoke, pardon): a-z, 0-9, _")
    _add_config_flags(pupils, "database.url")
    pupils.add_argument(
        "--max-connections",
        type=int,
        help="the student's connections (default: 5: a worker and a `status` beside it)",
    )
    pupils.add_argument("--output", metavar="FILE", help="also write the student's URL to FILE")
    pupils.set_defaults(func=_students)

    coord = commands.add_parser(
        "coordinator",
        parents=[verbose],
        help="run (or resume) the class run",
        description=classroom.coordinator.__doc__,
    )
    _add_config_flags(coord, *COORDINATOR_OPTIONS, *mode_settings(), exclude=COORDINATOR_EXCLUDED)
    coord.set_defaults(func=lambda a: classroom.coordinator(_config_from(a)))

    work = commands.add_parser(
        "worker",
        parents=[verbose],
        help="contribute to the class run",
        description=classroom.worker.__doc__,
    )
    _add_config_flags(work, *WORKER_OPTIONS)
    work.add_argument("--max-units", type=int, help="exit after this many units")
    work.add_argument(
        "--gpus",
        metavar="all|0,1",
        help="one worker process per GPU, named NAME-gpu0, NAME-gpu1, ... (Ctrl+C stops them all)",
    )
    work.set_defaults(func=_worker)

    stat = commands.add_parser(
        "status",
        parents=[verbose],
        help="where the class run stands",
        description=classroom.status.__doc__,
    )
    _add_config_flags(stat, "database.url")
    stat.add_argument("--json", action="store_true", help="machine-readable output")
    stat.set_defaults(func=lambda a: classroom.status(_config_from(a), as_json=a.json))

    dash = commands.add_parser(
        "dashboard",
        parents=[verbose],
        help="live class dashboard in the browser (read-only)",
        description="Serve the class dashboard (extra: pip install 'ganfriends[dashboard]').",
    )
    _add_config_flags(dash, "database.url")
    dash.add_argument("--port", type=int, default=8501, help="HTTP port (default: 8501)")
    dash.add_argument(
        "--address", default="127.0.0.1", help="listen address (0.0.0.0 for the whole class)"
    )
    dash.set_defaults(
        func=lambda a: classroom.dashboard(_config_from(a), port=a.port, address=a.address)
    )

    demo = commands.add_parser(
        "demo",
        parents=[verbose],
        help="a coordinator and workers on this machine",
        description=classroom.demo.__doc__,
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
    demo.set_defaults(func=classroom.demo)


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
