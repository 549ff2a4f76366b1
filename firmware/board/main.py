# The LED controller; it retries every failure itself and stops only on Ctrl-C.
import app
app.main()
