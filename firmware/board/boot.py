# Runs first after every reset: LED off, "HIL boot", Wi-Fi from config.json
# with a bounded wait. main.py then runs the controller.
import app
app.boot()
