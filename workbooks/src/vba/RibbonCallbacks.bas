Attribute VB_Name = "RibbonCallbacks"
' The xlfuncs ribbon tab: each button runs one function of xlfuncs.macros in Python
' through RunPython of the xlwings add-in (referenced by this project, never copied).
' The Python side acts on the active workbook. Generated files load this module from
' workbooks/src/vba/RibbonCallbacks.bas: edit it there and rebuild.
Option Explicit

' RunPython starts from the active workbook (xlwings reads its sheets first) and stops
' with run-time error 91 when none is open: say what to do instead.
Private Function NoWorkbook(button As String) As Boolean
    NoWorkbook = ActiveWorkbook Is Nothing
    If NoWorkbook Then
        MsgBox "Open a workbook first (or create one with File > New), then click " & _
               button & " again.", vbExclamation, "xlfuncs"
    End If
End Function

Public Sub OnRefreshHoldings(control As IRibbonControl)
    If NoWorkbook("Refresh holdings") Then Exit Sub
    RunPython "import xlfuncs.macros; xlfuncs.macros.refresh_holdings()"
End Sub

Public Sub OnRunBacktest(control As IRibbonControl)
    If NoWorkbook("Run backtest") Then Exit Sub
    RunPython "import xlfuncs.macros; xlfuncs.macros.run_backtest()"
End Sub

Public Sub OnImportFunctions(control As IRibbonControl)
    If NoWorkbook("Import functions") Then Exit Sub
    RunPython "import xlfuncs.macros; xlfuncs.macros.import_functions()"
End Sub

Public Sub OnDoctor(control As IRibbonControl)
    If NoWorkbook("Doctor") Then Exit Sub
    RunPython "import xlfuncs.macros; xlfuncs.macros.doctor()"
End Sub

Public Sub OnHelp(control As IRibbonControl)
    If NoWorkbook("Help") Then Exit Sub
    RunPython "import xlfuncs.macros; xlfuncs.macros.show_help()"
End Sub
