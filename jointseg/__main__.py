"""``python -m jointseg``: the ``jointseg`` CLI (what ``torchrun -m jointseg`` runs)."""

from jointseg.cli import main

main(prog_name="jointseg")
