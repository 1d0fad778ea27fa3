"""Camera calibration: extrinsics from a printed ChArUco board (``llm-trainer calibrate-cameras``)."""
