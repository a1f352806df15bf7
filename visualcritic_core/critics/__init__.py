"""Critic backends. Each module is one backend; `registry.load_critic` picks one."""
