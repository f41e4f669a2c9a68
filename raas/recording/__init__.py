"""Every cycle on record: the tap in the loop process, the recorder process, replay.

    tap.RecordingPublisher   Publisher + SessionSink in the loop process; never blocks
    process                  the recorder process: one MCAP file per session
    session_file             the MCAP writing (small zstd chunks, crash-tolerant)
    launch.run_recorder      start both; cell.start_recorder for a brought-up cell (raas.daemon)
    replay                   re-run recorded observations through a bundle, compare actions
The file format itself is defined in raas_client.report.format (shared with `raas report`).
"""
