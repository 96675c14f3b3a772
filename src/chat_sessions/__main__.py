from chat_sessions.cli import main

main()
