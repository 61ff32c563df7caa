#!/usr/bin/env bash
# Assembles .device/ (git-ignored through .git/info/exclude) for one device call: the bundle built by
# `mvn -pl device-bundle -am verify -DskipTests`, device.sh and its helpers, the specs, the corpora and the commit.
# Then: run(command=".device/device.sh PHASE...", carry=[".device"]); PHASE as in device.sh's header.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.device"
bundle="$root/device-bundle/target/slope-device.tar.xz"
[[ -f "$bundle" ]] || { echo "stage: $bundle is missing; build it: mvn -pl device-bundle -am verify -DskipTests" >&2; exit 1; }
exclude="$(git -C "$root" rev-parse --path-format=absolute --git-path info/exclude)" # a worktree's too
grep -qx '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >>"$exclude"
rm -rf "$dest" && mkdir -p "$dest"
cp "$bundle" "$root"/device-bundle/{device.sh,summarize.py,compare_runs.py,compare_ranks.py,kernel_table.py,char200.json,ranks.json,gpurun.sh,gpurun.json,compare_resume.py,hf_check.py,service.sh,servicerun.py,servicerun.json} \
    "$root/bench/pytorch/train_gpt2.py" "$root/bench/pytorch/gutenberg_reference.py" "$root/bench/step_table.py" \
    "$root/bench/infer_table.py" "$root/bench/quality" "$root/bench/sparse-gemm/sparse_gemm_table.py" \
    "$dest/"
cp "$root/../shared/data/tinyshakespeare.txt" "$dest/"
# The Gutenberg books for device.sh quality (10 MB as xz; compressed once, kept in target/ across stagings).
books="$root/device-bundle/target/gutenberg.tar.xz"
[[ -f "$books" && "$books" -nt "$root/../shared/data/gutenberg/MANIFEST.tsv" ]] \
    || tar -C "$root/../shared/data" -cJf "$books" gutenberg
cp "$books" "$dest/"
git -C "$root" rev-parse HEAD >"$dest/COMMIT"
echo "stage: $(du -sh "$dest" | cut -f1) in $dest for commit $(cut -c1-10 "$dest/COMMIT")"
