"""The ``ganfriends`` command line. This is the one error funnel: a ``GanError`` becomes one line on
stderr and exit status 1; ``-v`` adds the traceback.

A command's config flags are the options that name it (``ganfriends.config.sections``): a section
lists the commands that read it, so a new option appears on exactly the commands that use it."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from ganfriends import __version__
from ganfriends.children import bind_to_parent
from ganfriends.cli.classroom import add_class_commands
from ganfriends.cli.doctor import add_doctor_command
from ganfriends.cli.flags import Handler, command, config_from
from ganfriends.config import config_yaml, load_config
from ganfriends.errors import GanError
from ganfriends.rules.registry import mode_names


def cmd_config(args: argparse.Namespace) -> int:
    """Print the configuration the commands would read here (config file < environment), one
    section per block, each headed by the commands that read it; secrets masked. A bad value or
    an unknown option is reported as any command would."""
    print(config_yaml(config_from(args)), end="")
    return 0


def cmd_train_local(args: argparse.Namespace) -> int:
    """Train on this machine."""
    from ganfriends.training.local import train_local

    result = train_local(config_from(args), resume=args.resume)
    return 130 if result.stopped_early else 0


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
    config = config_from(args)
    check_fields(config.slurm)  # before anything else is checked or written
    if train.resume is None:
        check_train_args(rest[1:], config_from(train).training.batch_size, config.slurm)
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
    """Run a class run's mode (--mode) in this process, with its rules."""
    from ganfriends.training.simulate import simulate

    result = simulate(config_from(args))
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
    """The full argument parser (also used to render --help in the docs)."""
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

    train = command(commands, verbose, "train-local", "train on this machine", cmd_train_local)
    train.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")

    gen = command(
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

    evaluate = command(
        commands, verbose, "eval", "FID, KID and precision/recall of a checkpoint", run_eval
    )
    add_eval_arguments(evaluate)

    slurm = command(
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

    command(
        commands, verbose, "simulate",
        f"a class run's mode ({', '.join(mode_names())}) in one process, for research",
        cmd_simulate,
    )  # fmt: skip

    celeba = command(
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
    settings = command(
        commands, verbose, "config", "print the configuration the commands would read here",
        cmd_config,
    )  # fmt: skip
    settings.add_argument(
        "--config", metavar="FILE", help="YAML config file (default: ./config.yaml if present)"
    )
    add_class_commands(commands, verbose)
    add_doctor_command(commands, verbose)
    return parser


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
