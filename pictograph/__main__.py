from pictograph.cli import app

app(prog_name="pictograph")
