"""chat-sessions: a multi-tenant session store for chatbots and agents."""
