"""What the motcua services truly share: the event contract and the plumbing around it."""
