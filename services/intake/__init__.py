"""intake: the one-stop counters' HTTP API (Bộ phận tiếp nhận và trả kết quả)."""
