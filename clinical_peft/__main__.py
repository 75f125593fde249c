import sys

from clinical_peft.cli.commands import main

sys.exit(main())
