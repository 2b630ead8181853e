# Sourced by scripts/test.sh and scripts/demo.sh: create .venv and install the pinned CPU stack once.
python3 -m venv .venv || return 1
source .venv/bin/activate || return 1
stamp=.venv/.solireward-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip || return 1
  python -m pip install -q -c constraints.txt -e '.[test,workflow,deepspeed,serve]' || return 1
  touch "$stamp"
fi
