"""CLI sub-commands: one module each, exposing ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. The CLI (:mod:`hdys_rt.cli`) registers the modules listed here and shows
each (sub-)command's :data:`EXAMPLES` below its ``--help``."""

COMMANDS: tuple[str, ...] = (
    "hdys_rt.commands.data",
    "hdys_rt.commands.train",
    "hdys_rt.commands.calibrate",
    "hdys_rt.commands.eval",
    "hdys_rt.commands.estimate",
    "hdys_rt.commands.serve",
    "hdys_rt.commands.replay",
    "hdys_rt.commands.listen",
    "hdys_rt.commands.demo",
    "hdys_rt.commands.export",
    "hdys_rt.commands.keys",
    "hdys_rt.commands.bridge",
    "hdys_rt.commands.view",
)

#: Example command lines shown under each (sub-)command's ``--help`` ("" is ``hdys-rt`` itself).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("hdys-rt demo --seconds 20",
         "hdys-rt serve --source lsl --name vicon --engine auto",
         "hdys-rt estimate trial.c3d --out trial_id.sto --mass 72"),
    "data": ("hdys-rt data build --quick --out corpus-q", "hdys-rt data info corpus-q"),
    "data build": ("hdys-rt data build --out corpus --seed 0",
                   "hdys-rt data build --quick --out corpus-q     # small corpus, < 1 minute"),
    "data info": ("hdys-rt data info corpus",),
    "train": ("hdys-rt train --preset small --data corpus --out runs/small",),
    "calibrate": ("hdys-rt calibrate --model runs/small/model --data corpus",
                  "hdys-rt calibrate --model runs/walk/model --data corpus --tasks walk"),
    "eval": ("hdys-rt eval --model runs/small/model.safetensors --data corpus "
             "--json runs/small/eval.json",),
    "estimate": ("hdys-rt estimate trial.c3d --out trial_id.sto --mass 72",
                 "hdys-rt estimate trial.trc --out trial.csv --plot plots/"),
    "serve": ("hdys-rt serve --source lsl --name vicon --engine auto",
              "hdys-rt serve --source zmq --input keypoints",
              "hdys-rt serve --source replay --file trial.trc --lsl-out"),
    "replay": ("hdys-rt replay trial.c3d --to lsl --loop",),
    "listen": ("hdys-rt listen --count 200 --format json > estimates.jsonl",),
    "demo": ("hdys-rt demo --seconds 20",),
    "export": ("hdys-rt export --engine auto --out engines/auto",
               "hdys-rt export --engine fastest --out engines/best"),
    "keys": ("hdys-rt keys generate keys/ --client exo",),
    "bridge": ("hdys-rt bridge file trial.c3d --check",
               "hdys-rt bridge keypoints poses.jsonl --layout coco17 --up ydown"),
    "bridge file": ("hdys-rt bridge file trial.c3d --check      # names, units, what is missing",
                    "hdys-rt bridge file trial.c3d --to lsl --name vicon --mass 72 --loop"),
    "bridge keypoints": ("hdys-rt bridge keypoints --listen tcp://127.0.0.1:5570 --bind "
                         "--up ydown --rate 30",
                         "hdys-rt bridge keypoints poses.jsonl --layout coco17 --up ydown"),
    "view": ("hdys-rt view --stream vicon     # then open http://127.0.0.1:8765/",),
}
