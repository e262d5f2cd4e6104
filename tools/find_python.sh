#!/usr/bin/env bash
# Print the interpreter `make` should use for PYTHON=NAME: NAME itself when it runs; otherwise, for a name such as
# python3.12 that pyenv knows but has not put on PATH (its shim then refuses), pyenv's newest 3.12.x. Else NAME
# unchanged (the venv step then fails with the shell's own message).
set -u
name=$1
if "$name" -c 'import sys' > /dev/null 2>&1; then echo "$name"; exit 0; fi
if [[ "$name" =~ ^python([0-9]+\.[0-9]+)$ ]] && root="$(pyenv root 2> /dev/null)"; then
    found="$(ls -d "$root/versions/${BASH_REMATCH[1]}".* 2> /dev/null | sort -V | tail -1)"
    if [ -n "$found" ] && [ -x "$found/bin/$name" ]; then echo "$found/bin/$name"; exit 0; fi
fi
echo "$name"
