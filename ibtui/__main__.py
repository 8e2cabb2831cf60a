import sys

try:  # Ctrl-C while Python still imports ibtui: exit 130 as after a run's Ctrl-C, no traceback
    from ibtui.cli import main

    main()
except KeyboardInterrupt:
    sys.exit(130)
