#!/usr/bin/env bash
# Runs shellcheck at its default severity (style included), over every shell script of the project:
# each file of the tree (tracked or not ignored) whose first line names sh, bash or busybox sh,
# and every *.sh (the sourced libraries). Any disabled check carries a
# comment in place saying why. Usage: shellcheck_test.sh SOURCE_ROOT
set -Eeuo pipefail
# A command that fails where no check catches it still says what failed.
trap 'echo "shellcheck_test.sh: line $LINENO: \`$BASH_COMMAND\` exited $?" >&2' ERR
cd "${1:?usage: shellcheck_test.sh SOURCE_ROOT}"
command -v shellcheck >/dev/null || { echo "shellcheck_test: shellcheck is not installed (scripts/install-deps installs it)" >&2; exit 1; }

if [ -d .git ] || git rev-parse --git-dir >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard)
else
  mapfile -t files < <(find . -type f -not -path './build*' -not -path './.git/*' | sed 's|^\./||')
fi
scripts=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  first=$(head -c 64 "$f" | head -n 1) || true
  case "$f:$first" in *.sh:*|*:'#!'*sh*) scripts+=("$f") ;; esac
done
[ ${#scripts[@]} -gt 0 ] || { echo "shellcheck_test: no shell script found under $PWD" >&2; exit 1; }
echo "shellcheck_test: ${#scripts[@]} scripts: ${scripts[*]}"
shellcheck -x "${scripts[@]}"
echo "shellcheck_test: clean"
