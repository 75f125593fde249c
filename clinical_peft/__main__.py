import sys

from clinical_peft.commands import COMMANDS, run_command

if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:  # helper commands: no Lightning import
    sys.exit(run_command(sys.argv[1], sys.argv[2:]))

from clinical_peft.cli import main  # noqa: E402

sys.exit(main())
