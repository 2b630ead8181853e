# Sourced by scripts/test.sh and scripts/demo.sh: create .venv and install the pinned CPU stack once, with the
# extras the caller names in SOLIREWARD_EXTRAS (default: everything the tests need). The demo asks for
# `workflow` alone: DeepSpeed, the server and pytest take no part in it (and an installed DeepSpeed is imported
# by every training's save, through accelerate). .venv/.solireward-installed lists the extras installed; a
# later caller that needs more installs them on top.
extras=${SOLIREWARD_EXTRAS:-test,workflow,deepspeed,serve}
[ -f .venv/bin/activate ] || python3 -m venv .venv || return 1
source .venv/bin/activate || return 1
stamp=.venv/.solireward-installed
wanted=$( { cat "$stamp" 2>/dev/null; tr ',' '\n' <<<"$extras"; } | sort -u | paste -sd, -)
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ] \
   || [ "$wanted" != "$(sort -u "$stamp" | paste -sd, -)" ]; then
  python -m pip install -q --upgrade pip || return 1
  python -m pip install -q -c constraints.txt -e ".[$wanted]" || return 1
  tr ',' '\n' <<<"$wanted" >"$stamp"
fi
