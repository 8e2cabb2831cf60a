import signal
import sys

# Ctrl-C while Python still imports ibtui: exit 130 as after a run's Ctrl-C, quietly. During the imports the signal
# is only noted (a KeyboardInterrupt raised inside the import machinery's own callbacks would print "Exception
# ignored … KeyboardInterrupt" and be lost), then acted on once they are done.
_held: list[int] = []
_previous = signal.getsignal(signal.SIGINT)
if _previous is signal.default_int_handler:
    signal.signal(signal.SIGINT, lambda signum, frame: _held.append(signum))
try:
    from ibtui.cli import main
finally:
    if _previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, _previous)
try:
    if _held:
        sys.exit(130)
    main()
except KeyboardInterrupt:
    sys.exit(130)
