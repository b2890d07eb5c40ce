"""Labs: a folder with a lab.yaml (a cluster, manifests, exercises with checks)
and a README.md that teaches it; `knet lab` brings it up, checks it and takes it
down (knet.cli.lab is the command, this package the format and the runners).

model.py reads and checks the file (pure), templates.py the `{{ KIND/NAME
PATH }}` values a check may name, checks.py runs one check against a cluster
seam and says what it expected and saw, live.py is that seam on a real
cluster, session.py is up / check / run / down, catalog.py finds labs by name.
"""
