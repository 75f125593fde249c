import sys

from clinical_peft.cli import main

sys.exit(main())
