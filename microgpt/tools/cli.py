"""`python -m microgpt`: train and print names, sample from a checkpoint, list stages.

User mistakes end in one line on stderr (see `microgpt.tools.args`).
"""

import os
import random
import sys
from contextlib import nullcontext

from .. import checkpoint, stages
from ..config import AdamConfig, ConfigError, GPTConfig
from ..data import Tokenizer, data_source, load_dataset
from ..errors import (
    MicrogptError,
    forget_interrupt,
    hold_standard_streams,
    raise_interrupts,
    to_stderr,
)
from ..sampling import iter_names
from ..train import (
    INFERENCE_HEADER,
    Run,
    format_eval,
    format_held_out,
    format_sample,
    format_step,
)
from . import distributed
from .args import (
    ArgumentParser,
    Output,
    check_distinct_paths,
    check_environment_paths,
    count,
    error_line,
    flush_stdout,
    input_file,
    integer,
    note,
    output_file,
    positive_int,
    positive_number,
    run_command,
    silence_stdout,
    stage_name,
    temperature,
    whole_number,
)
from .profiling import PROFILE_VARIABLES, profiled

COMMANDS = ("train", "sample", "stages", "bench")
# the model's shape: flag -> GPTConfig field (makemore's flag names), microgpt's defaults
SHAPE_FLAGS = {
    "--n-layer": ("n_layer", "transformer blocks"),
    "--n-embd": ("n_embd", "width of the residual stream"),
    "--n-head": ("n_head", "attention heads; each sees n_embd / n_head dimensions"),
    "--block-size": ("block_size", "longest context in tokens; longer names are cut"),
}
# names per step: one batch of B names of up to block_size tokens is B x block_size x vocab
# numbers in the embedding's backward, so B is bounded here, not by the machine's memory
MAX_BATCH = 1024


def add_stage_flag(parser, what):
    parser.add_argument(
        "--stage",
        type=stage_name,
        default=None,
        help=f"{what} (default: the fastest available; see `stages`)",
    )


def add_sampling_flags(parser):
    parser.add_argument(
        "--samples", type=count, default=20, help="how many names to print (default 20)"
    )
    parser.add_argument(
        "--temperature",
        type=temperature,
        default=0.5,
        help="sampling temperature, > 0; lower is safer, higher is wilder (default 0.5)",
    )


def train_parser(prog):
    p = ArgumentParser(
        prog=prog,
        description="Train microgpt on a list of names, then print new names it invents.",
        epilog="Other commands: sample, stages, bench (each has --help).",
    )
    p.add_argument("--steps", type=positive_int, default=1000, help="training steps (default 1000)")
    p.add_argument(
        "--seed", type=integer, default=42, help="random seed (default 42, the original's)"
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        type=input_file,
        help="names file, one per line (default: $MICROGPT_DATA, ./input.txt, the cache, "
        "or a download of makemore's names.txt)",
    )
    add_stage_flag(p, f"implementation to run, one of {', '.join(stages.stage_names())}")
    p.add_argument(
        "--save",
        metavar="PATH",
        type=output_file,
        help="write a JSON checkpoint here after training",
    )
    p.add_argument(
        "--batch-size",
        type=whole_number(1, MAX_BATCH),
        default=None,
        help=f"names per step, 1 to {MAX_BATCH}, padded and masked "
        "(batched stages only; changes the algorithm)",
    )
    p.add_argument(
        "--eval-every",
        type=positive_int,
        default=None,
        metavar="N",
        help="hold out 10%% of the names (at most 1,000) and print the train and held-out "
        "losses every N steps and at the end (default: off; all names train)",
    )
    add_sampling_flags(p)
    add_shape_flags(p)
    add_engine_flags(p)
    return p


def add_shape_flags(parser):
    shape = parser.add_argument_group("model shape (the defaults are microgpt's)")
    defaults = GPTConfig()
    for flag, (field, meaning) in SHAPE_FLAGS.items():
        default = getattr(defaults, field)
        help_text = f"{meaning} (default {default})"
        shape.add_argument(flag, type=positive_int, default=default, metavar="N", help=help_text)
    lr = AdamConfig().lr
    shape.add_argument(
        "--learning-rate",
        type=positive_number,
        default=lr,
        metavar="LR",
        help=f"Adam's learning rate at step 1, decaying linearly to 0 (default {lr:g})",
    )


def model_config(args, parser):
    """The shape the flags ask for, checked once (in `GPTConfig`); exit 2 when no stage
    can run it, the message naming the flags."""
    try:
        cfg = GPTConfig(**{field: getattr(args, field) for field, _ in SHAPE_FLAGS.values()})
    except ConfigError as e:
        message = str(e)
        for flag, (field, _) in SHAPE_FLAGS.items():
            message = message.replace(field, flag)
        parser.error(message)
    return cfg


def add_engine_flags(parser):
    """--device, --dtype, --compile: options of the stages that take them (see the registry)."""
    takes = ", ".join(s.name for s in stages.STAGES if s.options)
    parser.add_argument(
        "--device",
        choices=stages.DEVICES,
        help=f"where to train ({takes} only; default auto: CUDA when present, else cpu)",
    )
    parser.add_argument(
        "--dtype",
        choices=stages.DTYPES,
        help=f"precision ({takes} only; default float64; "
        "bfloat16: float32 weights and Adam, bfloat16 products)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help=f"build the model with torch.compile ({takes} only; a minute to start)",
    )


def engine_options(parser, args, stage):
    """The engine flags given, as options for the stage's Model; exit 2 where it takes none."""
    given = {name: getattr(args, name) for name in ("device", "dtype", "compile")}
    given = {name: value for name, value in given.items() if value}
    for name in given:
        if name not in stages.BY_NAME[stage].options:
            takes = ", ".join(s.name for s in stages.STAGES if name in s.options)
            parser.error(f"--{name} needs a stage that takes it ({takes}), not {stage}")
    return given


def sample_parser(prog):
    p = ArgumentParser(prog=prog, description="Print names sampled from a saved checkpoint.")
    p.add_argument(
        "--load",
        metavar="PATH",
        type=input_file,
        required=True,
        help="checkpoint written by --save",
    )
    p.add_argument("--seed", type=integer, default=42, help="random seed for sampling (default 42)")
    add_stage_flag(p, "implementation to sample with")
    add_sampling_flags(p)
    return p


def names_input(path):
    """{where it is given: path} of the names file a run will read, if the user gave one."""
    given = data_source(path)
    return {given[1]: given[0]} if given else {}


def check_flags(command, args, parser, profiles):
    """What no single flag's type can check, before any work (exit 2): two files that
    are one, --batch-size with a stage that trains on one name, engine options the stage
    or this machine cannot take, a torchrun launch that cannot work. Fills in the stage
    (the fastest that loads: a broken numpy is passed over, saying so), and for training
    its options, launch and device."""
    if not args.stage:
        passed_over = []
        args.stage = stages.default_name(passed_over)
        for name, why in passed_over:
            note("microgpt", f"running stage {args.stage}, not {name}: {why}")
    if command == "train":
        clash = check_distinct_paths({"--save": args.save, **profiles}, names_input(args.data))
    else:
        clash = check_distinct_paths(profiles, {"--load": args.load})
    if clash:
        parser.error(clash)
    if command != "train":
        return
    if args.batch_size and not stages.BY_NAME[args.stage].batched:
        batched = ", ".join(s.name for s in stages.STAGES if s.batched)
        parser.error(
            f"--batch-size needs a stage that trains on batches ({batched}), not {args.stage}"
        )
    args.cfg = model_config(args, parser)
    args.adam = AdamConfig(lr=args.learning_rate)
    args.options = engine_options(parser, args, args.stage)
    args.launch = torchrun_launch(parser, args, args.stage)
    args.device = engine_device(parser, args.stage, args.options, args.launch)


def cmd_train(args):
    module = stages.load(args.stage)
    dataset = load_dataset(args.data)
    if dataset.is_fallback:
        to_stderr(f"training on the {dataset.source} ({len(dataset.docs)} names)")
    say = Output(keep_going=bool(args.save))
    if args.save:
        chars = Tokenizer.from_docs(dataset.docs).chars
        checkpoint.check_capacity(args.cfg, chars, args.save)
    if args.launch:
        distributed.start(args.launch, args.device)
    run = Run(
        dataset.docs, module, seed=args.seed, cfg=args.cfg, adam=args.adam, options=args.options
    )
    if args.launch:
        distributed.distribute(args.launch, run.model)
    if args.eval_every and not run.hold_out():
        raise MicrogptError(
            "--eval-every needs at least 10 names to hold a tenth out; "
            f"the data has {len(run.docs)}"
        )
    say(f"num docs: {len(run.docs)}")
    if args.eval_every:
        say(format_held_out(len(run.held_out), run.bigram_loss()))
    say(f"vocab size: {run.tokenizer.vocab_size}")
    say(f"num params: {run.model.num_params}")
    launch = args.launch
    with distributed.guard(launch) if launch else nullcontext():
        for step, loss in run.train(args.steps, distributed.names_per_step(launch, args)):
            last = step + 1 == args.steps
            say(format_step(step, args.steps, loss), flush=last and not args.eval_every)
            if args.eval_every and ((step + 1) % args.eval_every == 0 or last):
                say(format_eval(step, args.steps, *run.evaluate()), flush=True)
    if launch:
        distributed.stop()
        if launch.rank:
            return  # process 0 saves and samples
    save_failed = None
    if args.save:
        try:
            checkpoint.save(args.save, run.model, run.tokenizer, args.stage, args.steps)
        except OSError as e:  # a full disk: say so after the names, which are still good
            save_failed = checkpoint.CheckpointError(
                f"--save {args.save}: the checkpoint could not be written ({e.strerror or e}); "
                "any file that was there is unchanged"
            )
    say()
    say(INFERENCE_HEADER)
    names = iter_names(run.model, run.tokenizer, run.rng, args.samples, args.temperature)
    for i, name in enumerate(names):
        say(format_sample(i, name))
    if save_failed:
        raise save_failed
    if say.error:
        raise say.error


def torchrun_launch(parser, args, stage):
    """This process's place in a torchrun launch (None outside one); exit 2 for a launch
    that cannot work, before PyTorch loads."""
    try:
        launch = distributed.launch_from(os.environ)
        if launch:
            distributed.check_run(launch, stages.BY_NAME[stage], args.batch_size)
    except MicrogptError as e:
        parser.error(str(e))
    return launch


def engine_device(parser, stage, options, launch):
    """The device the stage's options name (None for a stage without options); exit 2 when
    this machine or PyTorch build cannot run them."""
    if not stages.BY_NAME[stage].options:
        return None
    try:
        device = stages.load(stage).check_options(**options)
        if launch:
            distributed.check_device(launch, device)
    except MicrogptError as e:  # an unavailable option (StageError) or a LaunchError
        parser.error(str(e))
    return device


def cmd_sample(args):
    module = stages.load(args.stage)
    cfg, chars, weights = checkpoint.load(args.load)
    tokenizer = Tokenizer(chars)
    model = module.Model(cfg, tokenizer.vocab_size, weights)
    rng = random.Random(args.seed)
    say = Output()
    for i, name in enumerate(iter_names(model, tokenizer, rng, args.samples, args.temperature)):
        say(format_sample(i, name))


def cmd_stages(args):
    available = {stage.name for stage in stages.available()}
    passed_over = []
    default = stages.default_name(passed_over)
    broken = {name for name, _ in passed_over}
    say = Output()
    for stage in stages.STAGES:
        mark = "*" if stage.name == default else " "
        needs = " ".join(stage.requires)
        why = "" if stage.name in available else f"  (needs {needs})"
        why = f"  (needs {needs}, which fails to import)" if stage.name in broken else why
        say(f"{mark} {stage.name:<18} {stage.summary}{why}")


def main(argv=None):
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    distributed.silence(os.environ)  # torchrun's processes other than 0 print nothing
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "train"
    prog = f"python -m microgpt {command}"
    if command == "bench":
        from . import bench  # deferred: training imports nothing of the benchmark

        return bench.main(argv)
    if command == "stages":  # lists, runs nothing: no profile (as bench, which times)
        ArgumentParser(
            prog=prog, description="List the stages, fastest available marked *."
        ).parse_args(argv)
        return run_command("microgpt", cmd_stages, None)
    parser = train_parser("python -m microgpt") if command == "train" else sample_parser(prog)
    args = parser.parse_args(argv)
    profiles = {name: os.environ.get(name) for name in PROFILE_VARIABLES}
    check_flags(command, args, parser, profiles)
    action = cmd_train if command == "train" else cmd_sample
    try:
        check_environment_paths(os.environ, PROFILE_VARIABLES)
    except MicrogptError as e:
        error_line("microgpt", e)
        return 2

    def profiled_action():
        with profiled():
            action(args)

    return run_command("microgpt", profiled_action)


def run():
    """Console-script entry point (`microgpt ...`); Ctrl-C anywhere is one line, exit 130.

    Output that cannot be encoded (a CJK name on an ASCII terminal) is escaped, not a
    crash; what is still buffered is flushed here, so a closed pipe (`--help | head`)
    ends quietly instead of failing the interpreter's last flush. A stdout or stderr
    the process started without (`>&-`, `2>&-`) is one that cannot be written.
    """
    raise_interrupts()  # the loading is over: Ctrl-C is a KeyboardInterrupt again
    hold_standard_streams()
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure:
            reconfigure(errors="backslashreplace")
    try:
        code = main()
    except SystemExit as e:  # argparse: --help, a bad flag
        code = e.code
    except BrokenPipeError:  # `--help | head` with unbuffered output
        silence_stdout()
        code = 0
    except MicrogptError as e:  # before any command runs: no stage at all can be loaded
        error_line("microgpt", e)
        code = 1
    except KeyboardInterrupt:
        to_stderr("microgpt: interrupted")
        code = 130
    if not flush_stdout() and code == 0:
        error_line("microgpt", "standard output cannot be written")
        code = 1
    forget_interrupt()
    sys.exit(code)
