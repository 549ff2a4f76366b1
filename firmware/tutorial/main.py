import mqtt
mqtt.main()
