import sys

from clinical_peft.commands import main

sys.exit(main())
