Attribute VB_Name = "RibbonCallbacks"
' The xlfuncs ribbon tab: each button runs one function of xlfuncs.macros in Python
' through RunPython of the xlwings add-in (referenced by this project, never copied).
' The Python side acts on the active workbook. Generated files load this module from
' workbooks/src/vba/RibbonCallbacks.bas: edit it there and rebuild.
Option Explicit

Public Sub OnRefreshHoldings(control As IRibbonControl)
    RunPython "import xlfuncs.macros; xlfuncs.macros.refresh_holdings()"
End Sub

Public Sub OnRunBacktest(control As IRibbonControl)
    RunPython "import xlfuncs.macros; xlfuncs.macros.run_backtest()"
End Sub

Public Sub OnImportFunctions(control As IRibbonControl)
    RunPython "import xlfuncs.macros; xlfuncs.macros.import_functions()"
End Sub

Public Sub OnDoctor(control As IRibbonControl)
    RunPython "import xlfuncs.macros; xlfuncs.macros.doctor()"
End Sub

Public Sub OnHelp(control As IRibbonControl)
    RunPython "import xlfuncs.macros; xlfuncs.macros.show_help()"
End Sub
