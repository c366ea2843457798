"""The runtime: everything get_app() may import, in every process Passenger starts.

Standard library only, cheap to import, and never imports shim.ops, shim.cli or shim.tasks
(tests/runtime/test_layers.py guards this). Per process start: loader -> config -> checks ->
records (+ applog when logging is on, diagnostics when catch_errors is on, pages when a page is
served). Per request: only the app, or diagnostics' CatchErrors around it, or a static page.
"""
