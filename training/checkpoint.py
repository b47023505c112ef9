"""A run folder's resumable state, and a copy of it small enough to commit.

A run folder holds `recipe.json` (the options that define the run and the data's sha256),
`history.json` (one row per finished epoch) and the checkpoint of the last finished epoch:
`epoch-NNN.params` (the live weights), `epoch-NNN.states` (the optimizer's state: NAG momentum) and,
with a weight average, `epoch-NNN-ema.params`. `history.json` is written after the checkpoint and
the previous epoch's files are removed only then, so a run killed at any moment resumes from the
last complete epoch, and a copy taken while the run goes on is consistent.

    python -m training.checkpoint keep RUN_DIR DEST_DIR

copies the latest checkpoint, recipe and history of a (possibly running) run into DEST_DIR, e.g.
`training/runs/NAME` to commit it; `python -m training.train --data PATH --out DEST_DIR` resumes
from there on any machine.
"""

import argparse
import json
import os
import shutil
from pathlib import Path

RECIPE = "recipe.json"
HISTORY = "history.json"
CURVES = "history.png"
SUFFIXES = (".params", ".states", "-ema.params")
KEEP_ATTEMPTS = 5  # a run moving to the next epoch during the copy makes `keep` read it again


class RecipeError(ValueError):
    """The run folder belongs to another recipe or another data set; the message says which option."""


def checkpoint_files(folder: Path, epoch: int) -> dict[str, Path]:
    """The checkpoint files of `epoch`, by suffix."""
    return {suffix: folder / f"epoch-{epoch:03d}{suffix}" for suffix in SUFFIXES}


def write_json(path: Path, value: object) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)


def read_history(folder: Path) -> list[dict]:
    path = folder / HISTORY
    return json.loads(path.read_text()) if path.exists() else []


def settle_recipe(folder: Path, options: dict, given: set[str], data_sha256: str, defaults: dict) -> dict:
    """The run's recipe: the folder's saved one (options given on the command line must agree), else `options`.

    Not written here: the caller checks a new recipe first (`write_recipe`), so a refused start
    leaves the folder free for the corrected command. An option newer than the saved recipe stands
    at its default there (`defaults`), which the run had in effect.
    """
    path = folder / RECIPE
    if not path.exists():
        return {"options": options, "data_sha256": data_sha256}
    recipe = json.loads(path.read_text())
    saved = recipe["options"]
    conflicts = [
        f"--{key.replace('_', '-')} {options[key]} (the run's recipe says {saved.get(key, defaults.get(key))})"
        for key in sorted(given & options.keys())
        if options[key] != saved.get(key, defaults.get(key))
    ]
    if recipe["data_sha256"] != data_sha256:
        conflicts.append(f"data with sha256 {data_sha256} (the run was trained on {recipe['data_sha256']})")
    if conflicts:
        raise RecipeError(f"{folder} holds another run: {'; '.join(conflicts)}. Use another --out.")
    return recipe


def write_recipe(folder: Path, recipe: dict) -> None:
    """Save a checked recipe on the run's first start, so a resumed run needs only --data and --out."""
    if not (folder / RECIPE).exists():
        write_json(folder / RECIPE, recipe)


def save(folder: Path, epoch: int, net, trainer, average, history: list[dict]) -> None:
    """Write the checkpoint of `epoch`, then the history naming it, then drop older checkpoints."""
    files = checkpoint_files(folder, epoch)
    writers = {".params": net.save_parameters, ".states": trainer.save_states}
    if average is not None:
        writers["-ema.params"] = average.save
    for suffix, write in writers.items():
        tmp = files[suffix].with_name(files[suffix].name + ".tmp")
        write(str(tmp))
        os.replace(tmp, files[suffix])
    write_json(folder / HISTORY, history)
    current = {path.name for path in files.values()}
    for old in folder.glob("epoch-*"):
        if old.name not in current:
            old.unlink()


def load(folder: Path, epoch: int, net, trainer, average) -> None:
    """Restore the live weights, the optimizer state and the weight average saved after `epoch`."""
    files = checkpoint_files(folder, epoch)
    net.load_parameters(str(files[".params"]))
    trainer.load_states(str(files[".states"]))
    if average is not None:
        average.load(str(files["-ema.params"]))


def keep(run: Path, dest: Path) -> int:
    """Copy the latest checkpoint, recipe, history and curves of `run` into `dest`; returns the epoch."""
    for _ in range(KEEP_ATTEMPTS):
        history = read_history(run)
        if not history:
            raise FileNotFoundError(f"{run / HISTORY}: no finished epoch to keep")
        epoch = history[-1]["epoch"]
        sources = [run / RECIPE, *(path for path in checkpoint_files(run, epoch).values() if path.exists())]
        dest.mkdir(parents=True, exist_ok=True)
        try:
            for source in sources:
                tmp = dest / (source.name + ".tmp")
                shutil.copyfile(source, tmp)
                os.replace(tmp, dest / source.name)
        except FileNotFoundError:  # the run finished another epoch and removed these files meanwhile
            continue
        if (run / CURVES).exists():
            shutil.copyfile(run / CURVES, dest / CURVES)
        write_json(dest / HISTORY, history)
        names = {source.name for source in sources}
        for old in dest.glob("epoch-*"):
            if old.name not in names:
                old.unlink()
        return epoch
    raise RuntimeError(f"{run} moved on {KEEP_ATTEMPTS} times during the copy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    keeper = commands.add_parser("keep", help="copy a run's latest checkpoint, e.g. into training/runs/NAME")
    keeper.add_argument("run", type=Path, help="the run folder (--out of training.train)")
    keeper.add_argument("dest", type=Path, help="where to copy it")
    args = parser.parse_args(argv)
    epoch = keep(args.run, args.dest)
    size = sum(path.stat().st_size for path in args.dest.iterdir())
    print(f"kept epoch {epoch} of {args.run} in {args.dest} ({size / 1e6:.1f} MB)", flush=True)
    return epoch


if __name__ == "__main__":
    main()
