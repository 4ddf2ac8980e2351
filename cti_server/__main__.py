from cti_server.cli import main

raise SystemExit(main())
