#!/usr/bin/env bash
# Make the SLURM profile findable by name, so that from the repository root
#   snakemake --profile slurm --config year=2019
# works (and `--profile profiles/slurm` keeps working).
#
#   scripts/install_profile.sh            # ./slurm -> profiles/slurm (the repository root)
#   scripts/install_profile.sh --user     # also ~/.config/snakemake/slurm -> profiles/slurm
#
# Snakemake 9 (snakemake/cli.py, get_profile_dir) resolves `--profile NAME` as a path
# when NAME exists relative to the working directory, else it looks for NAME in the
# working directory, then in the user's config dir (~/.config/snakemake) and the site's
# (/etc/xdg/snakemake). A relative symlink `slurm` in the repository root is therefore
# found first, only there, and never shadows a user's own `slurm` profile elsewhere;
# `--user` makes the name work from any directory, but only when the user has none.
# Idempotent; never replaces a file or directory that is not such a symlink.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="$ROOT/profiles/slurm"

log() { echo "install_profile: $*" >&2; }

link() {  # link <path of the link> <what it points to>
    local path="$1" dest="$2"
    if [[ -L $path ]]; then
        [[ "$(readlink "$path")" == "$dest" ]] && return 0
        ln -sfn "$dest" "$path"
        log "updated $path -> $dest"
    elif [[ -e $path ]]; then
        log "left $path alone: it exists and is not a symlink"
    else
        ln -s "$dest" "$path"
        log "linked $path -> $dest"
    fi
}

[[ -f $TARGET/config.yaml ]] || { log "error: $TARGET/config.yaml missing"; exit 1; }

link "$ROOT/slurm" "profiles/slurm"
if [[ ${1:-} == "--user" ]]; then
    user_dir="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake"
    mkdir -p "$user_dir"
    link "$user_dir/slurm" "$TARGET"
fi
