"""`python -m examples.bank [STORE] [--schema NAME]`."""

from . import main

raise SystemExit(main())
