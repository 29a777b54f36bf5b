from kimi_tui.cli import main

raise SystemExit(main())
