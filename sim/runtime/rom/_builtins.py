# The board's builtins module: _boot.py fills it (see there why).
