"""`spaces-scheduler deploy TARGET`: what runs the schedules on each platform.

- `base.py`: the `Target` interface, options, the header every file carries;
- `cron_translate.py`: our cron into each platform's form, exact or refused;
- `files.py`: the YAML writer and `--check` against the disk;
- `github.py`, `kubernetes.py`, `systemd.py`: the file targets;
- `hfjob.py`: Hugging Face scheduled Jobs, printed or applied through the Hub client;
- `cli.py`: the `deploy` command group.
"""
